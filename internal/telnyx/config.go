package telnyx

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"time"
)

// DefaultAPIBaseURL is Telnyx's API; the client adds the /v2/… paths.
const DefaultAPIBaseURL = "https://api.telnyx.com"

var (
	// e164 is a +E.164 number.
	e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	// shortCode is a 5–6 digit short code.
	shortCode = regexp.MustCompile(`^[0-9]{5,6}$`)
	// alphaChars are what an alphanumeric sender ID is made of.
	alphaChars = regexp.MustCompile(`^[A-Za-z0-9 ]{1,11}$`)
	// letter is what makes a sender ID alphanumeric rather than numeric.
	letter = regexp.MustCompile(`[A-Za-z]`)
	// apiKeyChars are what an API key may hold: it goes into a header.
	apiKeyChars = regexp.MustCompile(`^[\x21-\x7e]+$`)
)

// Config is the Telnyx adapter's configuration, read from the environment
// with sethvargo/go-envconfig. Its String, GoString and LogValue methods
// redact the API key.
type Config struct {
	// APIKey authenticates API calls (Bearer). It is a secret.
	APIKey string `env:"TELNYX_API_KEY"`
	// FromNumber is the sender: a +E.164 number, a short code or an
	// alphanumeric sender ID. At least one of FromNumber and
	// MessagingProfileID is set; an alphanumeric sender needs both.
	FromNumber string `env:"TELNYX_FROM_NUMBER"`
	// MessagingProfileID sends through a messaging profile: alone, Telnyx
	// picks the sender from the profile's number pool.
	MessagingProfileID string `env:"TELNYX_MESSAGING_PROFILE_ID"`
	// PublicKey is the account's webhook signing key: base64 of the raw
	// 32-byte Ed25519 public key, as the portal shows it. Not a secret.
	PublicKey string `env:"TELNYX_PUBLIC_KEY"`
	// APIBaseURL replaces https://api.telnyx.com: the sandbox and the tests
	// point the client at a local server with it. A path is kept as a
	// prefix.
	APIBaseURL string `env:"TELNYX_API_BASE_URL, default=https://api.telnyx.com"`
	// RequestTimeout bounds one HTTP request, response body included.
	RequestTimeout time.Duration `env:"TELNYX_REQUEST_TIMEOUT, default=10s"`
	// DetailRecordLag is how long Telnyx may take to make an accepted
	// message searchable as a message detail record. FindSent trusts an
	// empty search only for attempts older than this; for younger ones it
	// answers throttled, so the job waits and asks again. 0 trusts any
	// search at once (the sandbox indexes messages immediately).
	DetailRecordLag time.Duration `env:"TELNYX_DETAIL_RECORD_LAG, default=5m"`
}

// Validate reports the first configuration problem: the API key is
// required (printable ASCII, no spaces); FromNumber, MessagingProfileID or
// both are set, FromNumber is a +E.164 number, a short code or an
// alphanumeric sender (which needs MessagingProfileID); PublicKey decodes to
// a 32-byte key; APIBaseURL is an absolute http(s) URL; the timeout is
// positive and DetailRecordLag is not negative.
func (c Config) Validate() error {
	switch {
	case c.APIKey == "":
		return errors.New("TELNYX_API_KEY is required")
	case !apiKeyChars.MatchString(c.APIKey):
		return errors.New("TELNYX_API_KEY must be printable ASCII without spaces")
	case c.FromNumber == "" && c.MessagingProfileID == "":
		return errors.New("one of TELNYX_FROM_NUMBER and TELNYX_MESSAGING_PROFILE_ID is required")
	case c.FromNumber != "" && !e164.MatchString(c.FromNumber) && !shortCode.MatchString(c.FromNumber) && !isAlphaSender(c.FromNumber):
		return errors.New("TELNYX_FROM_NUMBER must be a +E.164 number, a short code or an alphanumeric sender ID")
	case isAlphaSender(c.FromNumber) && c.MessagingProfileID == "":
		return errors.New("an alphanumeric TELNYX_FROM_NUMBER needs TELNYX_MESSAGING_PROFILE_ID")
	case c.RequestTimeout <= 0:
		return errors.New("TELNYX_REQUEST_TIMEOUT must be positive")
	case c.DetailRecordLag < 0:
		return errors.New("TELNYX_DETAIL_RECORD_LAG must not be negative")
	}
	if _, err := ParsePublicKey(c.PublicKey); err != nil {
		return fmt.Errorf("TELNYX_PUBLIC_KEY: %w", err)
	}
	if _, err := parseBaseURL(c.APIBaseURL); err != nil {
		return err
	}
	return nil
}

// isAlphaSender reports whether s is an alphanumeric sender ID: 1–11
// letters, digits and spaces, at least one of them a letter.
func isAlphaSender(s string) bool { return alphaChars.MatchString(s) && letter.MatchString(s) }

// ParsePublicKey decodes a webhook public key as Telnyx's portal shows it:
// standard base64 of the raw 32-byte Ed25519 key. It returns an error when
// the key is missing, not base64 or not 32 bytes long.
func ParsePublicKey(b64 string) (ed25519.PublicKey, error) {
	if b64 == "" {
		return nil, errors.New("public key is required")
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, errors.New("public key is not standard base64")
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key is %d bytes, want %d", len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

// parseBaseURL parses an API base URL: absolute, http or https, no query.
func parseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("TELNYX_API_BASE_URL must be an absolute http(s) URL without query")
	}
	return u, nil
}

func redact(secret string) string {
	if secret == "" {
		return ""
	}
	return "REDACTED"
}

// String describes the configuration with the API key redacted.
func (c Config) String() string {
	return fmt.Sprintf("telnyx.Config{APIKey:%q FromNumber:%q MessagingProfileID:%q PublicKey:%q APIBaseURL:%q RequestTimeout:%s DetailRecordLag:%s}",
		redact(c.APIKey), c.FromNumber, c.MessagingProfileID, c.PublicKey, c.APIBaseURL, c.RequestTimeout, c.DetailRecordLag)
}

// GoString is String, so that %#v redacts the API key too.
func (c Config) GoString() string { return c.String() }

// LogValue logs the configuration with the API key redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("api_key", redact(c.APIKey)),
		slog.String("from_number", c.FromNumber),
		slog.String("messaging_profile_id", c.MessagingProfileID),
		slog.String("public_key", c.PublicKey),
		slog.String("api_base_url", c.APIBaseURL),
		slog.Duration("request_timeout", c.RequestTimeout),
		slog.Duration("detail_record_lag", c.DetailRecordLag),
	)
}

package twilio

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"time"
)

// DefaultAPIBaseURL is Twilio's REST API, the base URL the SDK hard-codes.
const DefaultAPIBaseURL = "https://api.twilio.com"

// maxValidityPeriod is the longest queue life Twilio accepts (10 hours).
const maxValidityPeriod = 36000 * time.Second

// alphanumeric is what twilio-go demands of the account SID and auth token:
// anything else fails in the SDK, before any request (codes 21222/21224).
var alphanumeric = regexp.MustCompile(`^[a-zA-Z0-9]+$`)

// Config is the Twilio adapter's configuration, read from the environment
// with sethvargo/go-envconfig. Its String, GoString and LogValue methods
// redact the auth token.
type Config struct {
	// AccountSID is the account (AC…) the messages are sent from.
	AccountSID string `env:"TWILIO_ACCOUNT_SID"`
	// AuthToken authenticates API calls and signs webhooks. It is a secret.
	AuthToken string `env:"TWILIO_AUTH_TOKEN"`
	// FromNumber is the sending number. Exactly one of FromNumber and
	// MessagingServiceSID is set.
	FromNumber string `env:"TWILIO_FROM_NUMBER"`
	// MessagingServiceSID (MG…) lets Twilio pick the sender from a pool.
	MessagingServiceSID string `env:"TWILIO_MESSAGING_SERVICE_SID"`
	// APIBaseURL replaces https://api.twilio.com: the sandbox and the tests
	// point the real SDK at a local server with it. A path is kept as a
	// prefix.
	APIBaseURL string `env:"TWILIO_API_BASE_URL, default=https://api.twilio.com"`
	// RequestTimeout bounds one HTTP request, response body included.
	RequestTimeout time.Duration `env:"TWILIO_REQUEST_TIMEOUT, default=10s"`
	// ValidityPeriod bounds how long Twilio may queue a message (1s…10h,
	// sent in whole seconds); 0 leaves Twilio's default of 10 hours. A
	// message's own, shorter validity wins.
	ValidityPeriod time.Duration `env:"TWILIO_VALIDITY_PERIOD, default=1h"`
}

// Validate reports the first configuration problem: the account SID and the
// auth token are required and alphanumeric, exactly one of FromNumber and
// MessagingServiceSID is set, APIBaseURL is an absolute http(s) URL, the
// timeout is positive and ValidityPeriod is 0 or within 1s…10h.
func (c Config) Validate() error {
	switch {
	case c.AccountSID == "":
		return errors.New("TWILIO_ACCOUNT_SID is required")
	case !alphanumeric.MatchString(c.AccountSID):
		return errors.New("TWILIO_ACCOUNT_SID must be alphanumeric")
	case c.AuthToken == "":
		return errors.New("TWILIO_AUTH_TOKEN is required")
	case !alphanumeric.MatchString(c.AuthToken):
		return errors.New("TWILIO_AUTH_TOKEN must be alphanumeric")
	case c.FromNumber == "" && c.MessagingServiceSID == "":
		return errors.New("one of TWILIO_FROM_NUMBER and TWILIO_MESSAGING_SERVICE_SID is required")
	case c.FromNumber != "" && c.MessagingServiceSID != "":
		return errors.New("set only one of TWILIO_FROM_NUMBER and TWILIO_MESSAGING_SERVICE_SID")
	case c.RequestTimeout <= 0:
		return errors.New("TWILIO_REQUEST_TIMEOUT must be positive")
	case c.ValidityPeriod != 0 && (c.ValidityPeriod < time.Second || c.ValidityPeriod > maxValidityPeriod):
		return errors.New("TWILIO_VALIDITY_PERIOD must be between 1s and 10h (or 0 for Twilio's default)")
	}
	if _, err := parseBaseURL(c.APIBaseURL); err != nil {
		return err
	}
	return nil
}

// parseBaseURL parses an API base URL: absolute, http or https, no query.
func parseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("TWILIO_API_BASE_URL must be an absolute http(s) URL without query")
	}
	return u, nil
}

func redact(secret string) string {
	if secret == "" {
		return ""
	}
	return "REDACTED"
}

// String describes the configuration with the auth token redacted.
func (c Config) String() string {
	return fmt.Sprintf("twilio.Config{AccountSID:%q AuthToken:%q FromNumber:%q MessagingServiceSID:%q APIBaseURL:%q RequestTimeout:%s ValidityPeriod:%s}",
		c.AccountSID, redact(c.AuthToken), c.FromNumber, c.MessagingServiceSID, c.APIBaseURL, c.RequestTimeout, c.ValidityPeriod)
}

// GoString is String, so that %#v redacts the auth token too.
func (c Config) GoString() string { return c.String() }

// LogValue logs the configuration with the auth token redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("account_sid", c.AccountSID),
		slog.String("auth_token", redact(c.AuthToken)),
		slog.String("from_number", c.FromNumber),
		slog.String("messaging_service_sid", c.MessagingServiceSID),
		slog.String("api_base_url", c.APIBaseURL),
		slog.Duration("request_timeout", c.RequestTimeout),
		slog.Duration("validity_period", c.ValidityPeriod),
	)
}

package googlehealth

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
)

// Provider is the name of this integration: the destination of its
// resilience policies, the prefix of its rate-limit keys, the provider of its
// connections and inbox rows.
const Provider = "google_health"

// Default endpoints.
const (
	DefaultAPIBaseURL = "https://health.googleapis.com/v4"
	DefaultAuthURL    = "https://accounts.google.com/o/oauth2/v2/auth"
	DefaultTokenURL   = "https://oauth2.googleapis.com/token"
	DefaultRevokeURL  = "https://oauth2.googleapis.com/revoke"
)

// ScopePrefix prefixes every Google Health scope.
const ScopePrefix = "https://www.googleapis.com/auth/googlehealth."

// DefaultScopes are the read scopes Switchboard asks for.
var DefaultScopes = []string{
	ScopePrefix + "activity_and_fitness.readonly",
	ScopePrefix + "health_metrics_and_measurements.readonly",
	ScopePrefix + "sleep.readonly",
	ScopePrefix + "settings.readonly",
}

// Secret is a string that never prints.
type Secret string

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString implements fmt.GoStringer.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.String()) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText implements encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Config is the Google Health configuration, read from the environment.
type Config struct {
	ClientID     string `env:"GOOGLE_HEALTH_CLIENT_ID"`
	ClientSecret Secret `env:"GOOGLE_HEALTH_CLIENT_SECRET"`
	APIBaseURL   string `env:"GOOGLE_HEALTH_API_BASE_URL, default=https://health.googleapis.com/v4"`
	AuthURL      string `env:"GOOGLE_OAUTH_AUTH_URL, default=https://accounts.google.com/o/oauth2/v2/auth"`
	TokenURL     string `env:"GOOGLE_OAUTH_TOKEN_URL, default=https://oauth2.googleapis.com/token"`
	RevokeURL    string `env:"GOOGLE_OAUTH_REVOKE_URL, default=https://oauth2.googleapis.com/revoke"`
	// Scopes asked for at consent, comma-separated; empty: DefaultScopes.
	Scopes []string `env:"GOOGLE_HEALTH_SCOPES"`
	// WebhookSecret is the endpointAuthorization secret of the subscriber
	// (e.g. "Bearer abc"). Several, separated by "|", are accepted while it
	// is rotated.
	WebhookSecret Secret `env:"GOOGLE_HEALTH_WEBHOOK_SECRET"`
	// WebhookKeyset is the path of the public keyset (Tink JSON) that
	// verifies notification signatures.
	WebhookKeyset string `env:"GOOGLE_HEALTH_WEBHOOK_KEYSET"`
	// WebhookRequireAuthorization refuses notifications without the
	// Authorization header (one implementer reported it missing: set false
	// to rely on the signature alone).
	WebhookRequireAuthorization bool `env:"GOOGLE_HEALTH_WEBHOOK_REQUIRE_AUTHORIZATION, default=true"`
}

// Configured reports whether OAuth client credentials are set.
func (c Config) Configured() bool { return c.ClientID != "" && c.ClientSecret != "" }

// withDefaults fills empty URLs.
func (c Config) withDefaults() Config {
	if c.APIBaseURL == "" {
		c.APIBaseURL = DefaultAPIBaseURL
	}
	if c.AuthURL == "" {
		c.AuthURL = DefaultAuthURL
	}
	if c.TokenURL == "" {
		c.TokenURL = DefaultTokenURL
	}
	if c.RevokeURL == "" {
		c.RevokeURL = DefaultRevokeURL
	}
	if len(c.Scopes) == 0 {
		c.Scopes = DefaultScopes
	}
	c.APIBaseURL = strings.TrimRight(c.APIBaseURL, "/")
	return c
}

// Validate checks the URLs. It returns an error naming the variable.
func (c Config) Validate() error {
	c = c.withDefaults()
	for name, v := range map[string]string{
		"GOOGLE_HEALTH_API_BASE_URL": c.APIBaseURL, "GOOGLE_OAUTH_AUTH_URL": c.AuthURL,
		"GOOGLE_OAUTH_TOKEN_URL": c.TokenURL, "GOOGLE_OAUTH_REVOKE_URL": c.RevokeURL,
	} {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("%s must be an absolute http(s) URL", name)
		}
	}
	if (c.ClientID == "") != (c.ClientSecret == "") {
		return errors.New("GOOGLE_HEALTH_CLIENT_ID and GOOGLE_HEALTH_CLIENT_SECRET must be set together")
	}
	return nil
}

// WebhookSecrets returns the accepted Authorization values.
func (c Config) WebhookSecrets() []string {
	var out []string
	for _, s := range strings.Split(string(c.WebhookSecret), "|") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

package api

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"

	"github.com/switchboard-health/switchboard/internal/httpserver"
)

// Config is the api's configuration, read from the environment with
// go-envconfig by cmd. It prints and logs with its secrets redacted.
type Config struct {
	// Addr is the listen address.
	Addr string `env:"API_ADDR, default=:8080"`

	// MetricsAddr is where /metrics is served, apart from the public
	// listener: loopback by default. Set it to ":9090" (with MetricsToken)
	// for a Prometheus on another host.
	MetricsAddr string `env:"API_METRICS_ADDR, default=127.0.0.1:9090"`

	// MetricsToken, when set, is the bearer token a scrape of /metrics must
	// send.
	MetricsToken httpserver.Token `env:"METRICS_TOKEN"`

	// PublicBaseURL is the externally visible base URL, e.g.
	// https://switchboard.example.com. Webhook URLs and their signatures are
	// computed against it, never against the request's Host header.
	PublicBaseURL string `env:"PUBLIC_BASE_URL, required"`

	// OperatorUsername and OperatorPasswordHash (bcrypt) guard River UI and
	// the admin routes. Both or neither must be set; with neither, operator
	// routes answer 503.
	OperatorUsername     string `env:"OPERATOR_USERNAME"`
	OperatorPasswordHash Secret `env:"OPERATOR_PASSWORD_HASH"`

	// SSO is OpenID Connect login for River UI and /status (OIDC_*).
	SSO SSOConfig

	// Login bounds failed operator logins (OPERATOR_LOGIN_*,
	// OPERATOR_BCRYPT_CONCURRENCY).
	Login LoginConfig

	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client for the login and upload lockouts (API_TRUSTED_PROXIES).
	// Empty: the direct peer is the client and the header is ignored.
	TrustedProxies Proxies `env:"API_TRUSTED_PROXIES"`

	// UploadAuth throttles failed Apple Health uploads per source
	// (APPLE_HEALTH_AUTH_*).
	UploadAuth UploadAuthConfig

	// FHIRAuth throttles FHIR notifications with a wrong secret per source
	// (FHIR_NOTIFY_AUTH_*).
	FHIRAuth FHIRAuthConfig

	// WebhookMaxBodyBytes limits a callback's body; larger ones get 413.
	WebhookMaxBodyBytes int64 `env:"WEBHOOK_MAX_BODY_BYTES, default=65536"`

	// HTTP holds the server's timeouts (HTTP_* variables).
	HTTP httpserver.Config

	// TwilioAuthToken verifies Twilio's webhook signatures. It is Twilio's
	// configuration (internal/twilio owns the variable); cmd copies it here.
	// Empty: Twilio callbacks answer 503 and store nothing.
	TwilioAuthToken string

	// TelnyxPublicKey verifies Telnyx's webhook signatures
	// (TELNYX_PUBLIC_KEY, owned by internal/telnyx; cmd sets it). Empty:
	// Telnyx webhooks answer 503 and store nothing.
	TelnyxPublicKey ed25519.PublicKey

	// Wearables serves the OAuth connect flow, the Google Health webhook and
	// Apple Health uploads (internal/wearables.NewAPI); cmd sets it. Nil:
	// those routes answer 503.
	Wearables Wearables
}

// DefaultWebhookMaxBodyBytes is the body limit New applies when
// Config.WebhookMaxBodyBytes is zero.
const DefaultWebhookMaxBodyBytes = 64 << 10

const redacted = "[redacted]"

// Secret is a string that never prints: String, GoString, LogValue and
// MarshalText all return "[redacted]" (or "" when it is empty, so that an unset
// secret is visible as such).
type Secret string

func (s Secret) mask() string {
	if s == "" {
		return ""
	}
	return redacted
}

// String implements fmt.Stringer.
func (s Secret) String() string { return s.mask() }

// GoString implements fmt.GoStringer.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.mask()) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.mask()) }

// MarshalText implements encoding.TextMarshaler, so JSON and YAML encoders
// redact it too.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.mask()), nil }

// String prints the configuration with its secrets redacted.
func (c Config) String() string {
	return fmt.Sprintf("{Addr:%s MetricsAddr:%s MetricsToken:%s PublicBaseURL:%s OperatorUsername:%s OperatorPasswordHash:%s WebhookMaxBodyBytes:%d HTTP:%+v TwilioAuthToken:%s}",
		c.Addr, c.MetricsAddr, c.MetricsToken, c.PublicBaseURL, c.OperatorUsername, c.OperatorPasswordHash, c.WebhookMaxBodyBytes, c.HTTP, Secret(c.TwilioAuthToken))
}

// GoString is String: %#v must not print secrets either.
func (c Config) GoString() string { return "api.Config" + c.String() }

// LogValue logs the configuration with its secrets redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("metrics_addr", c.MetricsAddr),
		slog.Any("metrics_token", c.MetricsToken),
		slog.String("public_base_url", c.PublicBaseURL),
		slog.String("operator_username", c.OperatorUsername),
		slog.Any("operator_password_hash", c.OperatorPasswordHash),
		slog.Int64("webhook_max_body_bytes", c.WebhookMaxBodyBytes),
		slog.Any("twilio_auth_token", Secret(c.TwilioAuthToken)),
	)
}

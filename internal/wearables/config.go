package wearables

import (
	"fmt"
	"strings"
	"time"

	"github.com/switchboard-health/switchboard/internal/googlehealth"
	"github.com/switchboard-health/switchboard/internal/ratelimit"
)

// DefaultReauthSMSText is the re-connect SMS; {link} becomes a fresh
// connect link.
const DefaultReauthSMSText = "Your Fitbit data stopped reaching your care team. Reconnect your Google account here: {link}"

// DefaultAccountMismatchSMSText tells a patient that a consent with a
// different Google account than theirs was refused.
const DefaultAccountMismatchSMSText = "Someone tried to connect a different Google account to your Fitbit sharing with your care team. It was not connected and nothing changed. If this was not you, contact your care team."

// DefaultDataTypes are the Google data types synced.
var DefaultDataTypes = []string{
	googlehealth.TypeSteps, googlehealth.TypeHeartRate, googlehealth.TypeDailyRestingHeartRate,
	googlehealth.TypeWeight, googlehealth.TypeSleep, googlehealth.TypeDailyOxygenSaturation,
}

// Config is the wearables configuration, read from the environment.
type Config struct {
	// PublicBaseURL is where patients' browsers reach the api (OAuth redirect URI).
	PublicBaseURL string `env:"PUBLIC_BASE_URL"`
	// BackfillDays is how far back a new connection is read.
	BackfillDays int `env:"WEARABLES_BACKFILL_DAYS, default=30"`
	// PollInterval is the period of the safety-net poll; PollLookback how
	// far back each poll re-reads.
	PollInterval time.Duration `env:"WEARABLES_POLL_INTERVAL, default=3h"`
	PollLookback time.Duration `env:"WEARABLES_POLL_LOOKBACK, default=72h"`
	// StaleAfter flags an active connection without new data for that long.
	StaleAfter time.Duration `env:"WEARABLES_STALE_AFTER, default=72h"`
	// SummaryPeriod is the period of high-frequency summaries (heart rate).
	SummaryPeriod time.Duration `env:"WEARABLES_SUMMARY_PERIOD, default=1h"`
	// UserRateLimit is Google's per-user quota, in internal/ratelimit's form.
	UserRateLimit string `env:"GOOGLE_HEALTH_USER_RATE_LIMIT, default=300/min burst 20"`
	// ErrorThreshold failures in a row move a connection to error.
	ErrorThreshold int `env:"WEARABLES_ERROR_THRESHOLD, default=8"`
	// ReauthSMSText is sent when a connection needs the patient's consent
	// again ({link}: a fresh connect link valid ReauthLinkTTL). Empty: the default.
	ReauthSMSText string        `env:"WEARABLES_REAUTH_SMS_TEXT"`
	ReauthLinkTTL time.Duration `env:"WEARABLES_REAUTH_LINK_TTL, default=72h"`
	// AccountMismatchSMSText is sent when a consent with a different Google
	// account than the patient's connected one is refused. Empty: the default.
	AccountMismatchSMSText string `env:"WEARABLES_ACCOUNT_MISMATCH_SMS_TEXT"`
	// StateTTL is how long an OAuth state (a started consent) lives.
	StateTTL time.Duration `env:"WEARABLES_OAUTH_STATE_TTL, default=10m"`
	// UploadMaxBytes limits an Apple Health upload; larger ones get 413.
	UploadMaxBytes int64 `env:"APPLE_HEALTH_MAX_BODY_BYTES, default=4194304"`
	// DataTypes are the Google data types synced, comma-separated.
	DataTypes []string `env:"WEARABLES_DATA_TYPES"`
	// SyncTimeout bounds one wearable_sync job.
	SyncTimeout time.Duration `env:"WEARABLES_SYNC_TIMEOUT, default=2m"`

	// BackfillSpacing spaces a backfill's sync jobs (the per-user limit
	// still applies); NotifyDelay debounces notification syncs so a burst
	// collapses into one job; SummarizeDelay waits for more samples.
	BackfillSpacing time.Duration `env:"WEARABLES_BACKFILL_SPACING, default=500ms"`
	NotifyDelay     time.Duration `env:"WEARABLES_NOTIFY_DELAY, default=5s"`
	SummarizeDelay  time.Duration `env:"WEARABLES_SUMMARIZE_DELAY, default=10s"`

	Google googlehealth.Config
}

// withDefaults fills zero values.
func (c Config) withDefaults() Config {
	if c.BackfillDays <= 0 {
		c.BackfillDays = 30
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 3 * time.Hour
	}
	if c.PollLookback <= 0 {
		c.PollLookback = 72 * time.Hour
	}
	if c.StaleAfter <= 0 {
		c.StaleAfter = 72 * time.Hour
	}
	if c.SummaryPeriod <= 0 {
		c.SummaryPeriod = time.Hour
	}
	if c.UserRateLimit == "" {
		c.UserRateLimit = "300/min burst 20"
	}
	if c.ErrorThreshold <= 0 {
		c.ErrorThreshold = 8
	}
	if c.ReauthSMSText == "" {
		c.ReauthSMSText = DefaultReauthSMSText
	}
	if c.AccountMismatchSMSText == "" {
		c.AccountMismatchSMSText = DefaultAccountMismatchSMSText
	}
	if c.ReauthLinkTTL <= 0 {
		c.ReauthLinkTTL = 72 * time.Hour
	}
	if c.StateTTL <= 0 {
		c.StateTTL = 10 * time.Minute
	}
	if c.UploadMaxBytes <= 0 {
		c.UploadMaxBytes = 4 << 20
	}
	if len(c.DataTypes) == 0 {
		c.DataTypes = DefaultDataTypes
	}
	if c.SyncTimeout <= 0 {
		c.SyncTimeout = 2 * time.Minute
	}
	c.PublicBaseURL = strings.TrimRight(c.PublicBaseURL, "/")
	return c
}

// Validate checks the configuration; errors name the variable.
func (c Config) Validate() error {
	c = c.withDefaults()
	if _, err := ratelimit.ParseLimit(c.UserRateLimit); err != nil {
		return fmt.Errorf("GOOGLE_HEALTH_USER_RATE_LIMIT: %w", err)
	}
	for _, t := range c.DataTypes {
		if _, ok := googlehealth.KindOf(t); !ok {
			return fmt.Errorf("WEARABLES_DATA_TYPES: %q is not a data type Switchboard reads", t)
		}
	}
	if c.SummaryPeriod < time.Minute || c.SummaryPeriod > 24*time.Hour || (24*time.Hour)%c.SummaryPeriod != 0 {
		return fmt.Errorf("WEARABLES_SUMMARY_PERIOD must divide a day, between 1m and 24h")
	}
	if len(c.ReauthSMSText) > 1400 {
		return fmt.Errorf("WEARABLES_REAUTH_SMS_TEXT must be at most 1400 characters")
	}
	if len(c.AccountMismatchSMSText) > 1400 {
		return fmt.Errorf("WEARABLES_ACCOUNT_MISMATCH_SMS_TEXT must be at most 1400 characters")
	}
	return c.Google.Validate()
}

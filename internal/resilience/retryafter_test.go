package resilience_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/resilience"
)

// One reading of Retry-After for every destination: seconds or an HTTP
// date, never more than MaxThrottleWait, 0 for what gives no wait.
func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                     0,
		"soon":                 0,
		"0":                    0,
		"-5":                   0,
		"42":                   42 * time.Second,
		" 42 ":                 42 * time.Second,
		"999999999":            resilience.MaxThrottleWait, // 31 years; would also overflow a Duration
		"99999999999999999999": 0,                          // beyond int64: unparsable
		now.Add(90 * time.Second).Format(http.TimeFormat):    90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):        0,
		now.Add(30 * 24 * time.Hour).Format(http.TimeFormat): resilience.MaxThrottleWait,
	} {
		require.Equal(t, want, resilience.RetryAfter(v, now), "Retry-After %q", v)
	}
}

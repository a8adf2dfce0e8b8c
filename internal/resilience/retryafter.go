package resilience

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryAfter reads a Retry-After header value as of now: delay seconds or
// an HTTP date, at most MaxThrottleWait (seconds beyond it would overflow
// a Duration, and no throttled hold lasts longer). An absent, unparsable,
// non-positive or past value is 0, for the caller's default.
func RetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, int64(MaxThrottleWait/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), MaxThrottleWait)
	}
	return 0
}

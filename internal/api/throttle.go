package api

import (
	"net/http"
	"strconv"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// failureThrottle counts failures per key (a source address, a username):
// a token bucket each (golang.org/x/time/rate) of burst failures, one more
// every refill, kept in an LRU (golang-lru/v2) of at most tracked keys so
// its memory is bounded. A key that never failed is not tracked. Operator
// logins and Apple Health uploads both use it.
type failureThrottle struct {
	burst  int
	refill time.Duration
	keys   *lru.Cache[string, *rate.Limiter]
}

func newFailureThrottle(burst int, refill time.Duration, tracked int) *failureThrottle {
	keys, _ := lru.New[string, *rate.Limiter](tracked) // fails only for a size <= 0, which the configs' defaults rule out
	return &failureThrottle{burst: burst, refill: refill, keys: keys}
}

// newSourceThrottle is a per-source throttle of failed authentications
// (Apple Health upload tokens, FHIR notification secrets); zero arguments
// take the defaults: 20 failures, one more a minute, 10,000 sources.
func newSourceThrottle(failures int, refill time.Duration, tracked int) *failureThrottle {
	if failures <= 0 {
		failures = 20
	}
	if refill <= 0 {
		refill = time.Minute
	}
	if tracked <= 0 {
		tracked = 10000
	}
	return newFailureThrottle(failures, refill, tracked)
}

// blocked reports whether key has used up its failures, and for how long.
func (t *failureThrottle) blocked(key string, now time.Time) (time.Duration, bool) {
	l, ok := t.keys.Peek(key)
	if !ok || l.TokensAt(now) >= 1 {
		return 0, false
	}
	r := l.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return wait, true
}

// failed spends one try of key.
func (t *failureThrottle) failed(key string, now time.Time) {
	l, ok := t.keys.Get(key)
	if !ok {
		l = rate.NewLimiter(rate.Every(t.refill), t.burst)
		if prev, found, _ := t.keys.PeekOrAdd(key, l); found {
			l = prev
		}
	}
	l.AllowN(now, 1)
}

// setRetryAfter sets a 429's Retry-After to wait, rounded up to whole
// seconds and at least one.
func setRetryAfter(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(int((wait+time.Second-1)/time.Second), 1)))
}

package twiliosandbox

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Chaos is standing misbehaviour applied to every request (create, list
// and fetch) before it is handled, for outage and load tests. The zero
// Chaos is a healthy Twilio.
type Chaos struct {
	// Outage answers every request 503 (code 20503) without handling it.
	Outage bool
	// Latency is added to every request.
	Latency time.Duration
	// ServerErrorShare of requests answer 500 without being handled.
	ServerErrorShare float64
	// ThrottleShare of requests answer 429 (code 20429) with Retry-After.
	ThrottleShare float64
	// RetryAfter is the Retry-After of throttled answers, in seconds (default 1).
	RetryAfter int
}

type chaosState struct {
	cfg       atomic.Pointer[Chaos]
	refused   atomic.Int64
	throttled atomic.Int64
}

// SetChaos replaces the standing misbehaviour; it takes effect at once.
func (s *Server) SetChaos(c Chaos) { s.chaos.cfg.Store(&c) }

// Refused counts requests answered 5xx by Chaos (outage or error share).
func (s *Server) Refused() int64 { return s.chaos.refused.Load() }

// Throttled counts requests answered 429 by Chaos.
func (s *Server) Throttled() int64 { return s.chaos.throttled.Load() }

// applyChaos answers the request itself when Chaos says so and reports
// whether it did.
func (s *Server) applyChaos(w http.ResponseWriter, r *http.Request) bool {
	c := s.chaos.cfg.Load()
	if c == nil {
		return false
	}
	if c.Latency > 0 {
		select {
		case <-time.After(c.Latency):
		case <-r.Context().Done():
			return true
		}
	}
	s.mu.Lock()
	roll := s.rng.Float64()
	s.mu.Unlock()
	switch {
	case c.Outage:
		s.chaos.refused.Add(1)
		writeError(w, http.StatusServiceUnavailable, 20503, "Service unavailable")
	case roll < c.ServerErrorShare:
		s.chaos.refused.Add(1)
		writeError(w, http.StatusInternalServerError, 20500, "Internal server error")
	case roll < c.ServerErrorShare+c.ThrottleShare:
		s.chaos.throttled.Add(1)
		ra := c.RetryAfter
		if ra <= 0 {
			ra = 1
		}
		w.Header().Set("Retry-After", strconv.Itoa(ra))
		writeError(w, http.StatusTooManyRequests, 20429, "Too Many Requests")
	default:
		return false
	}
	return true
}

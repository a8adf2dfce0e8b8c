package telnyxsandbox

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Chaos is standing misbehaviour applied to every request (create, fetch,
// detail records and profiles) before it is handled, for outage and load
// tests. The zero Chaos is a healthy Telnyx.
type Chaos struct {
	// Outage answers every request 503 (code 10007) without handling it.
	Outage bool
	// Latency is added to every request.
	Latency time.Duration
	// ServerErrorShare of requests answer 500 (code 10007) without being
	// handled.
	ServerErrorShare float64
	// ThrottleShare of requests answer 429 (code 10011) with Retry-After
	// and x-ratelimit-* headers.
	ThrottleShare float64
	// RetryAfter is the Retry-After of throttled answers, in seconds
	// (default 1).
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
		// net/http notices a client that hangs up only once the request
		// body has been read: read it now and hand a copy on.
		body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxRequestBody))
		if err != nil {
			return true
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		t := time.NewTimer(c.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true
		}
	}
	s.mu.Lock()
	roll := s.rng.Float64()
	s.mu.Unlock()
	switch {
	case c.Outage:
		s.chaos.refused.Add(1)
		writeError(w, http.StatusServiceUnavailable, "10007", "Unexpected error", "")
	case roll < c.ServerErrorShare:
		s.chaos.refused.Add(1)
		writeError(w, http.StatusInternalServerError, "10007", "Unexpected error", "")
	case roll < c.ServerErrorShare+c.ThrottleShare:
		s.chaos.throttled.Add(1)
		ra := c.RetryAfter
		if ra <= 0 {
			ra = 1
		}
		w.Header().Set("Retry-After", strconv.Itoa(ra))
		w.Header().Set("X-Ratelimit-Limit", "50")
		w.Header().Set("X-Ratelimit-Remaining", "0")
		w.Header().Set("X-Ratelimit-Reset", strconv.Itoa(ra))
		writeError(w, http.StatusTooManyRequests, "10011", "Too many requests", "")
	default:
		return false
	}
	return true
}

// Package fault is the standing misbehaviour the sandbox vendors share:
// outages, latency, a share of server errors and of throttled answers, each
// answered in the vendor's own error shape.
package fault

import (
	"bytes"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// Chaos is standing misbehaviour applied to every request before it is
// handled, for outage and load tests. The zero Chaos is a healthy vendor.
type Chaos struct {
	// Outage answers every request 503 without handling it.
	Outage bool
	// Latency is added to every request.
	Latency time.Duration
	// ServerErrorShare of requests answer 500 without being handled.
	ServerErrorShare float64
	// ThrottleShare of requests answer 429 with Retry-After.
	ThrottleShare float64
	// RetryAfter is the Retry-After of throttled answers, in seconds (default 1).
	RetryAfter int
}

// Answers write a vendor's own error responses.
type Answers struct {
	Outage      func(w http.ResponseWriter)                 // 503
	ServerError func(w http.ResponseWriter)                 // 500
	Throttle    func(w http.ResponseWriter, retryAfter int) // 429 with headers
}

// State holds the current Chaos and counts what it did. The zero State is
// healthy; it is safe for concurrent use.
type State struct {
	cfg       atomic.Pointer[Chaos]
	refused   atomic.Int64
	throttled atomic.Int64
}

// Set replaces the standing misbehaviour; it takes effect at once.
func (s *State) Set(c Chaos) { s.cfg.Store(&c) }

// Refused counts requests answered 5xx (outage or error share).
func (s *State) Refused() int64 { return s.refused.Load() }

// Throttled counts requests answered 429.
func (s *State) Throttled() int64 { return s.throttled.Load() }

// Apply answers the request itself when the Chaos says so and reports
// whether it did. roll draws a uniform number in [0, 1) from the vendor's
// seeded source; maxBody bounds the body read while waiting out Latency
// (net/http notices a client that hangs up only once the body is read).
func (s *State) Apply(w http.ResponseWriter, r *http.Request, roll func() float64, maxBody int64, a Answers) bool {
	c := s.cfg.Load()
	if c == nil {
		return false
	}
	if c.Latency > 0 {
		body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
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
	p := roll()
	switch {
	case c.Outage:
		s.refused.Add(1)
		a.Outage(w)
	case p < c.ServerErrorShare:
		s.refused.Add(1)
		a.ServerError(w)
	case p < c.ServerErrorShare+c.ThrottleShare:
		s.throttled.Add(1)
		ra := c.RetryAfter
		if ra <= 0 {
			ra = 1
		}
		a.Throttle(w, ra)
	default:
		return false
	}
	return true
}

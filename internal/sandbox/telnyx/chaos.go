package telnyxsandbox

import (
	"net/http"
	"strconv"

	"github.com/switchboard-health/switchboard/internal/sandbox/fault"
)

// Chaos is standing misbehaviour applied to every request (create, fetch,
// detail records and profiles) before it is handled; see fault.Chaos.
// Outages answer 503 and errors 500 (code 10007), throttling 429 (10011)
// with Retry-After and x-ratelimit-* headers.
type Chaos = fault.Chaos

// SetChaos replaces the standing misbehaviour; it takes effect at once.
func (s *Server) SetChaos(c Chaos) { s.chaos.Set(c) }

// Refused counts requests answered 5xx by Chaos (outage or error share).
func (s *Server) Refused() int64 { return s.chaos.Refused() }

// Throttled counts requests answered 429 by Chaos.
func (s *Server) Throttled() int64 { return s.chaos.Throttled() }

var telnyxAnswers = fault.Answers{
	Outage: func(w http.ResponseWriter) {
		writeError(w, http.StatusServiceUnavailable, "10007", "Unexpected error", "")
	},
	ServerError: func(w http.ResponseWriter) {
		writeError(w, http.StatusInternalServerError, "10007", "Unexpected error", "")
	},
	Throttle: func(w http.ResponseWriter, retryAfter int) {
		ra := strconv.Itoa(retryAfter)
		w.Header().Set("Retry-After", ra)
		w.Header().Set("X-Ratelimit-Limit", "50")
		w.Header().Set("X-Ratelimit-Remaining", "0")
		w.Header().Set("X-Ratelimit-Reset", ra)
		writeError(w, http.StatusTooManyRequests, "10011", "Too many requests", "")
	},
}

// applyChaos answers the request itself when Chaos says so.
func (s *Server) applyChaos(w http.ResponseWriter, r *http.Request) bool {
	return s.chaos.Apply(w, r, s.roll, maxRequestBody, telnyxAnswers)
}

func (s *Server) roll() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64()
}

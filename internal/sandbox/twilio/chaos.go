package twiliosandbox

import (
	"net/http"
	"strconv"

	"github.com/switchboard-health/switchboard/internal/sandbox/fault"
)

// Chaos is standing misbehaviour applied to every request (create, list
// and fetch) before it is handled; see fault.Chaos. Outages answer 503
// (code 20503), errors 500 (20500), throttling 429 (20429) with Retry-After.
type Chaos = fault.Chaos

// SetChaos replaces the standing misbehaviour; it takes effect at once.
func (s *Server) SetChaos(c Chaos) { s.chaos.Set(c) }

// Refused counts requests answered 5xx by Chaos (outage or error share).
func (s *Server) Refused() int64 { return s.chaos.Refused() }

// Throttled counts requests answered 429 by Chaos.
func (s *Server) Throttled() int64 { return s.chaos.Throttled() }

var twilioAnswers = fault.Answers{
	Outage: func(w http.ResponseWriter) {
		writeError(w, http.StatusServiceUnavailable, 20503, "Service unavailable")
	},
	ServerError: func(w http.ResponseWriter) {
		writeError(w, http.StatusInternalServerError, 20500, "Internal server error")
	},
	Throttle: func(w http.ResponseWriter, retryAfter int) {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
		writeError(w, http.StatusTooManyRequests, 20429, "Too Many Requests")
	},
}

// applyChaos answers the request itself when Chaos says so.
func (s *Server) applyChaos(w http.ResponseWriter, r *http.Request) bool {
	return s.chaos.Apply(w, r, s.roll, 1<<20, twilioAnswers)
}

func (s *Server) roll() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64()
}

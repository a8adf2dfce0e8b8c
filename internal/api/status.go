package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/switchboard-health/switchboard/internal/opsmetrics"
)

// statusTimeout bounds the database reads of one GET /status.
const statusTimeout = 5 * time.Second

// statusResponse is the body of GET /status. Its field names are a contract
// for operators' scripts: add fields, never rename or remove one.
//
//	{
//	  "generated_at": "2026-01-02T15:04:05.999Z",   // every time is RFC 3339 in UTC
//	  "destinations": [{                             // every destination_health row, by name
//	    "destination": "twilio",
//	    "last_success_at": "…" | null,
//	    "last_failure_at": "…" | null,
//	    "last_failure_class": "retryable" | null,
//	    "consecutive_failures": 0,
//	    "breaker_state": "closed" | "half-open" | "open",
//	    "paused": false,
//	    "paused_by": "alice" | null,
//	    "paused_at": "…" | null,
//	    "last_probe_at": "…" | null,
//	    "calls_total": 1234,
//	    "updated_at": "…"
//	  }],
//	  "queues": [{                                   // by name: queues with non-final jobs, and every
//	                                                 // queue of river_queue and job_kinds
//	    "queue": "sms",
//	    "available": 3, "scheduled": 0, "retryable": 1, "running": 2,
//	    "oldest_available_seconds": 1.5              // 0 when nothing is available
//	  }],
//	  "dead_letters_open": {"sms_send": 2, "webhook_process": 0}  // by kind; 0 for known kinds without any
//	}
type statusResponse struct {
	GeneratedAt     time.Time           `json:"generated_at"`
	Destinations    []statusDestination `json:"destinations"`
	Queues          []statusQueue       `json:"queues"`
	DeadLettersOpen map[string]int64    `json:"dead_letters_open"`
}

type statusDestination struct {
	Destination         string     `json:"destination"`
	LastSuccessAt       *time.Time `json:"last_success_at"`
	LastFailureAt       *time.Time `json:"last_failure_at"`
	LastFailureClass    *string    `json:"last_failure_class"`
	ConsecutiveFailures int32      `json:"consecutive_failures"`
	BreakerState        string     `json:"breaker_state"`
	Paused              bool       `json:"paused"`
	PausedBy            *string    `json:"paused_by"`
	PausedAt            *time.Time `json:"paused_at"`
	LastProbeAt         *time.Time `json:"last_probe_at"`
	CallsTotal          int64      `json:"calls_total"`
	UpdatedAt           time.Time  `json:"updated_at"`
}

type statusQueue struct {
	Queue                  string  `json:"queue"`
	Available              int64   `json:"available"`
	Scheduled              int64   `json:"scheduled"`
	Retryable              int64   `json:"retryable"`
	Running                int64   `json:"running"`
	OldestAvailableSeconds float64 `json:"oldest_available_seconds"`
}

// handleStatus serves GET /status (behind requireOperator): a read-only
// snapshot of destinations, queues and open dead letters as JSON. A database
// failure answers 503 with a short message; the error is logged, not shown.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), statusTimeout)
	defer cancel()
	snap, err := opsmetrics.ReadSnapshot(ctx, s.pool)
	if err != nil {
		s.logger.WarnContext(ctx, "error serving status", slog.Any("error", err))
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "status unavailable: database error", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(newStatusResponse(snap))
}

func newStatusResponse(snap opsmetrics.Snapshot) statusResponse {
	resp := statusResponse{
		GeneratedAt:     snap.GeneratedAt.UTC(),
		Destinations:    make([]statusDestination, 0, len(snap.Destinations)),
		Queues:          make([]statusQueue, 0, len(snap.Queues)),
		DeadLettersOpen: make(map[string]int64, len(snap.DeadLettersOpen)),
	}
	for _, d := range snap.Destinations {
		resp.Destinations = append(resp.Destinations, statusDestination{
			Destination:         d.Name,
			LastSuccessAt:       utc(d.LastSuccessAt),
			LastFailureAt:       utc(d.LastFailureAt),
			LastFailureClass:    d.LastFailureClass,
			ConsecutiveFailures: d.ConsecutiveFailures,
			BreakerState:        d.BreakerState,
			Paused:              d.Paused,
			PausedBy:            d.PausedBy,
			PausedAt:            utc(d.PausedAt),
			LastProbeAt:         utc(d.LastProbeAt),
			CallsTotal:          d.CallsTotal,
			UpdatedAt:           d.UpdatedAt.UTC(),
		})
	}
	for _, q := range snap.Queues {
		resp.Queues = append(resp.Queues, statusQueue{
			Queue:                  q.Name,
			Available:              q.Available,
			Scheduled:              q.Scheduled,
			Retryable:              q.Retryable,
			Running:                q.Running,
			OldestAvailableSeconds: q.OldestAvailable.Seconds(),
		})
	}
	for kind, n := range snap.DeadLettersOpen {
		resp.DeadLettersOpen[kind] = n
	}
	return resp
}

// utc returns t in UTC, or nil.
func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

package resilience

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/switchboard-health/switchboard/db"
)

var (
	callsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_destination_calls_total",
		Help: "Calls to external destinations by outcome class (ok, answered_error, failing, unavailable).",
	}, []string{"destination", "class"})
	callDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "switchboard_destination_call_duration_seconds",
		Help:    "Latency of calls to external destinations.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
	}, []string{"destination"})
	// breakerGauge is this process's breaker; switchboard_destination_breaker_state
	// (from the database, all replicas merged) is what alerts use.
	breakerGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "switchboard_process_breaker_state",
		Help: "This process's circuit breaker per destination: 0 closed, 1 half-open, 2 open.",
	}, []string{"destination"})
	configuredGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "switchboard_destination_configured",
		Help: "1 when this process can call the destination, 0 when its credentials are missing or placeholders (its jobs are held).",
	}, []string{"destination"})
)

// pending is one destination's outcomes since the last flush.
type pending struct {
	lastSuccess, lastFailure time.Time
	lastFailureClass         string
	failuresSinceSuccess     int
	breakerState             string
	breakerChanged           time.Time
	calls                    int64
	lastProbe                time.Time
}

func (r *Registry) stat(name string) *pending {
	p, ok := r.stats[name]
	if !ok {
		p = &pending{}
		r.stats[name] = p
	}
	return p
}

// record counts a call that reached the destination.
func (r *Registry) record(name string, healthy bool, class string, d time.Duration) {
	callsTotal.WithLabelValues(name, class).Inc()
	callDuration.WithLabelValues(name).Observe(d.Seconds())
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.stat(name)
	p.calls++
	if healthy {
		p.lastSuccess = now
		p.failuresSinceSuccess = 0
		return
	}
	p.lastFailure = now
	p.lastFailureClass = class
	p.failuresSinceSuccess++
}

// observe counts a call that did not reach the destination.
func (r *Registry) observe(name, class string) {
	callsTotal.WithLabelValues(name, class).Inc()
}

// Probed records that an idle destination was probed.
func (r *Registry) Probed(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stat(name).lastProbe = time.Now()
}

func (r *Registry) breakerChanged(name, state string) {
	v := map[string]float64{"closed": 0, "half-open": 1, "open": 2}[state]
	breakerGauge.WithLabelValues(name).Set(v)
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.stat(name)
	p.breakerState = state
	p.breakerChanged = time.Now()
}

// HealthStore persists destination health and reads operator pauses.
type HealthStore interface {
	Merge(ctx context.Context, destination string, p Snapshot) error
	Paused(ctx context.Context) (map[string]bool, error)
}

// Snapshot is one destination's outcomes since the last flush.
type Snapshot struct {
	LastSuccess, LastFailure time.Time
	LastFailureClass         string
	ConsecutiveFailures      int
	BreakerState             string
	BreakerChanged           time.Time
	Calls                    int64
	LastProbe                time.Time
}

// Flush writes what was counted since the last flush and refreshes pauses.
func (r *Registry) Flush(ctx context.Context) error {
	if r.store == nil {
		return nil
	}
	r.mu.Lock()
	stats := r.stats
	r.stats = map[string]*pending{}
	dests := make(map[string]*Destination, len(r.dests))
	for k, v := range r.dests {
		dests[k] = v
	}
	r.mu.Unlock()

	for name, p := range stats {
		snap := Snapshot{
			LastSuccess: p.lastSuccess, LastFailure: p.lastFailure, LastFailureClass: p.lastFailureClass,
			ConsecutiveFailures: p.failuresSinceSuccess, BreakerState: p.breakerState,
			BreakerChanged: p.breakerChanged, Calls: p.calls, LastProbe: p.lastProbe,
		}
		if snap.BreakerState == "" {
			if d := dests[name]; d != nil {
				snap.BreakerState = d.BreakerState()
			} else {
				snap.BreakerState = "closed"
			}
		}
		if err := r.store.Merge(ctx, name, snap); err != nil {
			// Put the counts back so the next flush carries them.
			r.mu.Lock()
			if _, ok := r.stats[name]; !ok {
				r.stats[name] = p
			}
			r.mu.Unlock()
			return fmt.Errorf("error recording health of %s: %w", name, err)
		}
	}
	return r.refreshPauses(ctx, time.Now())
}

// Run flushes every interval until ctx ends, then once more.
func (r *Registry) Run(ctx context.Context, interval time.Duration, logger *slog.Logger) {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = r.Flush(flushCtx)
			cancel()
			return
		case <-t.C:
			if err := r.Flush(ctx); err != nil && ctx.Err() == nil {
				logger.WarnContext(ctx, "destination health flush failed", slog.String("error", err.Error()))
			}
		}
	}
}

// DBStore is the HealthStore on switchboard.destination_health.
type DBStore struct {
	Pool *pgxpool.Pool
}

// Merge implements HealthStore.
func (s DBStore) Merge(ctx context.Context, destination string, p Snapshot) error {
	return db.New().DestinationHealthMerge(ctx, s.Pool, db.DestinationHealthMergeParams{
		Destination:         destination,
		LastSuccessAt:       timePtr(p.LastSuccess),
		LastFailureAt:       timePtr(p.LastFailure),
		LastFailureClass:    strPtr(p.LastFailureClass),
		ConsecutiveFailures: int32(p.ConsecutiveFailures),
		BreakerState:        p.BreakerState,
		BreakerChangedAt:    timePtr(p.BreakerChanged),
		Calls:               p.Calls,
		LastProbeAt:         timePtr(p.LastProbe),
	})
}

// Paused implements HealthStore.
func (s DBStore) Paused(ctx context.Context) (map[string]bool, error) {
	names, err := db.New().DestinationPausedList(ctx, s.Pool)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out, nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

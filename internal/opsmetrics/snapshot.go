package opsmetrics

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-health/switchboard/db"
)

// Breaker states of a destination, as stored in
// switchboard.destination_health.breaker_state.
const (
	BreakerClosed   = "closed"
	BreakerHalfOpen = "half-open"
	BreakerOpen     = "open"
)

// Snapshot is Switchboard's operational state at one moment.
type Snapshot struct {
	// GeneratedAt is when the snapshot was taken.
	GeneratedAt time.Time
	// Destinations holds every switchboard.destination_health row, by name.
	Destinations []Destination
	// Queues holds every queue that has non-final jobs or appears in
	// river_queue or job_kinds, by name.
	Queues []Queue
	// DeadLettersOpen counts open dead letters by kind, with 0 for every
	// kind of job_kinds that has none.
	DeadLettersOpen map[string]int64
}

// Queue is the depth of one River queue.
type Queue struct {
	Name      string
	Available int64
	Scheduled int64
	Retryable int64
	Running   int64
	// OldestAvailable is how long the oldest available job has waited past
	// its scheduled time, by the database clock; 0 when none is available.
	OldestAvailable time.Duration
}

// Destination is one destination's health, as workers and operators
// recorded it.
type Destination struct {
	Name                string
	LastSuccessAt       *time.Time
	LastFailureAt       *time.Time
	LastFailureClass    *string
	ConsecutiveFailures int32
	// BreakerState is BreakerClosed, BreakerHalfOpen or BreakerOpen.
	BreakerState string
	Paused       bool
	PausedBy     *string
	PausedAt     *time.Time
	LastProbeAt  *time.Time
	CallsTotal   int64
	UpdatedAt    time.Time
}

// Up reports whether the destination's last success is newer than its last
// failure, or it never failed.
func (d Destination) Up() bool {
	if d.LastFailureAt == nil {
		return true
	}
	return d.LastSuccessAt != nil && d.LastSuccessAt.After(*d.LastFailureAt)
}

// ReadSnapshot reads the current state in one read-only transaction. It
// returns an error, wrapping the driver's, when the database cannot be
// reached or a query fails; its text may name hosts and must not be shown
// to callers outside the process.
func ReadSnapshot(ctx context.Context, pool *pgxpool.Pool) (Snapshot, error) {
	at := time.Now().UTC()
	var snap Snapshot
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{
		IsoLevel:   pgx.RepeatableRead,
		AccessMode: pgx.ReadOnly,
	}, func(tx pgx.Tx) (err error) {
		snap, err = readSnapshot(ctx, tx)
		return err
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("error reading status snapshot: %w", err)
	}
	snap.GeneratedAt = at
	return snap, nil
}

// readSnapshot runs the status queries on tx; GeneratedAt is left unset.
func readSnapshot(ctx context.Context, tx db.DBTX) (Snapshot, error) {
	q := db.New()
	queues, err := q.StatusQueueDepth(ctx, tx)
	if err != nil {
		return Snapshot{}, fmt.Errorf("error reading queue depth: %w", err)
	}
	deadLetters, err := q.StatusDeadLettersOpen(ctx, tx)
	if err != nil {
		return Snapshot{}, fmt.Errorf("error counting open dead letters: %w", err)
	}
	destinations, err := q.StatusDestinationList(ctx, tx)
	if err != nil {
		return Snapshot{}, fmt.Errorf("error listing destination health: %w", err)
	}

	snap := Snapshot{
		Queues:          make([]Queue, 0, len(queues)),
		DeadLettersOpen: make(map[string]int64, len(deadLetters)),
		Destinations:    make([]Destination, 0, len(destinations)),
	}
	for _, r := range queues {
		snap.Queues = append(snap.Queues, Queue{
			Name:            r.Queue,
			Available:       r.Available,
			Scheduled:       r.Scheduled,
			Retryable:       r.Retryable,
			Running:         r.Running,
			OldestAvailable: time.Duration(r.OldestAvailableSeconds * float64(time.Second)),
		})
	}
	for _, r := range deadLetters {
		snap.DeadLettersOpen[r.Kind] = r.Open
	}
	for _, r := range destinations {
		snap.Destinations = append(snap.Destinations, Destination{
			Name:                r.Destination,
			LastSuccessAt:       r.LastSuccessAt,
			LastFailureAt:       r.LastFailureAt,
			LastFailureClass:    r.LastFailureClass,
			ConsecutiveFailures: r.ConsecutiveFailures,
			BreakerState:        r.BreakerState,
			Paused:              r.Paused,
			PausedBy:            r.PausedBy,
			PausedAt:            r.PausedAt,
			LastProbeAt:         r.LastProbeAt,
			CallsTotal:          r.CallsTotal,
			UpdatedAt:           r.UpdatedAt,
		})
	}
	return snap, nil
}

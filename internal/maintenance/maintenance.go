// Package maintenance is the periodic housekeeping job: erasing message and
// webhook bodies after their retention (the rows, statuses and audit
// entries stay), cleaning the rate limiter's idle keys, and requeueing the
// outage dead letters of kinds that opted in once their destination is
// healthy again.
package maintenance

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/jobs"
)

// Config is the retention and cadence of housekeeping.
type Config struct {
	// MessageBodyRetention: a final message's body is erased this long after
	// it ended.
	MessageBodyRetention time.Duration `env:"RETENTION_MESSAGE_BODY, default=720h"`
	// WebhookBodyRetention: raw webhook bodies, inbound SMS bodies and raw
	// resources pulled from EHRs are erased this long after they arrived
	// (processed ones only).
	WebhookBodyRetention time.Duration `env:"RETENTION_WEBHOOK_BODY, default=168h"`
	// Interval between maintenance runs.
	Interval time.Duration `env:"MAINTENANCE_INTERVAL, default=5m"`
	// ProbeInterval between destination probe rounds, and ProbeIdle, how
	// long a destination must be idle before it is probed.
	ProbeInterval time.Duration `env:"PROBE_INTERVAL, default=1m"`
	ProbeIdle     time.Duration `env:"PROBE_IDLE, default=1m"`
	// LimiterIdle: rate-limiter keys idle this long are deleted.
	LimiterIdle time.Duration `env:"RATE_LIMIT_IDLE, default=1h"`
}

// batch bounds each erase statement so it never holds many row locks.
const batch = 1000

// Cleaner removes idle rate-limiter state; nil skips it.
type Cleaner interface {
	Cleanup(ctx context.Context, idle time.Duration) (int, error)
}

// Worker works maintenance jobs.
type Worker struct {
	river.WorkerDefaults[jobs.MaintenanceArgs]

	cfg     Config
	pool    *pgxpool.Pool
	limiter Cleaner
	logger  *slog.Logger
}

// New returns a maintenance worker.
func New(cfg Config, pool *pgxpool.Pool, limiter Cleaner, logger *slog.Logger) *Worker {
	return &Worker{cfg: cfg, pool: pool, limiter: limiter, logger: logger}
}

// Timeout bounds one run.
func (w *Worker) Timeout(*river.Job[jobs.MaintenanceArgs]) time.Duration { return 5 * time.Minute }

// Work runs every housekeeping step; the steps are idempotent.
func (w *Worker) Work(ctx context.Context, job *river.Job[jobs.MaintenanceArgs]) error {
	r, err := Run(ctx, w.cfg, w.pool, w.limiter)
	if err != nil {
		return err
	}
	w.logger.InfoContext(ctx, "maintenance done",
		slog.Int64("message_bodies_erased", r.MessageBodies), slog.Int64("webhook_bodies_erased", r.WebhookBodies),
		slog.Int64("inbound_bodies_erased", r.InboundBodies), slog.Int("limiter_keys_removed", r.LimiterKeys),
		slog.Int("dead_letters_requeued", r.Requeued))
	return nil
}

// Result counts what one run did.
type Result struct {
	MessageBodies, WebhookBodies, InboundBodies int64
	LimiterKeys                                 int
	Requeued                                    int
}

// Run performs one round of housekeeping.
func Run(ctx context.Context, cfg Config, pool *pgxpool.Pool, limiter Cleaner) (Result, error) {
	var r Result
	q := db.New()
	now := time.Now()
	for {
		n, err := q.MessageBodiesErase(ctx, pool, db.MessageBodiesEraseParams{Cutoff: now.Add(-cfg.MessageBodyRetention), Batch: batch})
		if err != nil {
			return r, fmt.Errorf("error erasing message bodies: %w", err)
		}
		r.MessageBodies += n
		if n < batch {
			break
		}
	}
	for {
		n, err := q.WebhookBodiesErase(ctx, pool, db.WebhookBodiesEraseParams{Cutoff: now.Add(-cfg.WebhookBodyRetention), Batch: batch})
		if err != nil {
			return r, fmt.Errorf("error erasing webhook bodies: %w", err)
		}
		r.WebhookBodies += n
		if n < batch {
			break
		}
	}
	for {
		n, err := q.InboundMessageBodiesErase(ctx, pool, db.InboundMessageBodiesEraseParams{Cutoff: now.Add(-cfg.WebhookBodyRetention), Batch: batch})
		if err != nil {
			return r, fmt.Errorf("error erasing inbound message bodies: %w", err)
		}
		r.InboundBodies += n
		if n < batch {
			break
		}
	}
	for {
		n, err := q.FHIRInboundRawErase(ctx, pool, db.FHIRInboundRawEraseParams{Cutoff: now.Add(-cfg.WebhookBodyRetention), Batch: batch})
		if err != nil {
			return r, fmt.Errorf("error erasing raw FHIR resources: %w", err)
		}
		r.InboundBodies += n
		if n < batch {
			break
		}
	}
	if limiter != nil {
		n, err := limiter.Cleanup(ctx, cfg.LimiterIdle)
		if err != nil {
			return r, fmt.Errorf("error cleaning rate limits: %w", err)
		}
		r.LimiterKeys = n
	}
	kinds, err := q.JobKindsToAutoRequeue(ctx, pool)
	if err != nil {
		return r, fmt.Errorf("error listing kinds to requeue: %w", err)
	}
	for _, kind := range kinds {
		for _, class := range []string{"unavailable", "retries_exhausted"} {
			n, err := q.DeadLetterRetryWhere(ctx, pool, db.DeadLetterRetryWhereParams{Kind: &kind, Class: &class, Actor: "auto_requeue"})
			if err != nil {
				return r, fmt.Errorf("error requeueing dead letters of %s: %w", kind, err)
			}
			r.Requeued += int(n)
		}
	}
	return r, nil
}

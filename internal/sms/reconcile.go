package sms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/jobs"
)

// ReconcileConfig is when lost status callbacks are made good.
type ReconcileConfig struct {
	// After: a message accepted this long ago without a final status is
	// looked up (and again every After until it has one).
	After time.Duration `env:"SMS_RECONCILE_AFTER, default=30m"`
	// MaxAge: older messages are left alone (a carrier may never send a
	// final receipt for some messages; 'sent' then stays).
	MaxAge time.Duration `env:"SMS_RECONCILE_MAX_AGE, default=72h"`
	// Interval between reconciliation runs.
	Interval time.Duration `env:"SMS_RECONCILE_INTERVAL, default=5m"`
	// Batch bounds the lookups of one run.
	Batch int `env:"SMS_RECONCILE_BATCH, default=200"`
}

// ReconcileWorker works sms_reconcile jobs.
type ReconcileWorker struct {
	river.WorkerDefaults[jobs.SMSReconcileArgs]

	cfg       ReconcileConfig
	pool      *pgxpool.Pool
	providers []Provider
	logger    *slog.Logger
	q         *db.Queries
}

// NewReconcileWorker returns a reconciliation worker over providers.
func NewReconcileWorker(cfg ReconcileConfig, pool *pgxpool.Pool, providers []Provider, logger *slog.Logger) *ReconcileWorker {
	if cfg.Batch <= 0 {
		cfg.Batch = 200
	}
	return &ReconcileWorker{cfg: cfg, pool: pool, providers: providers, logger: logger, q: db.New()}
}

// Timeout bounds one run.
func (w *ReconcileWorker) Timeout(*river.Job[jobs.SMSReconcileArgs]) time.Duration {
	return 5 * time.Minute
}

// Work looks up a batch of unfinished messages. A provider that is
// unavailable is skipped for this run; lookups are reads, safe to repeat.
func (w *ReconcileWorker) Work(ctx context.Context, job *river.Job[jobs.SMSReconcileArgs]) error {
	now := time.Now()
	rows, err := w.q.MessageListUnfinished(ctx, w.pool, db.MessageListUnfinishedParams{
		Cutoff: now.Add(-w.cfg.After), Oldest: now.Add(-w.cfg.MaxAge), RecheckBefore: now.Add(-w.cfg.After), MaxRows: int32(w.cfg.Batch),
	})
	if err != nil {
		return fmt.Errorf("error listing unfinished messages: %w", err)
	}
	skip := map[string]bool{}
	applied := 0
	for _, m := range rows {
		if m.Provider == nil || m.ProviderMessageID == nil || skip[*m.Provider] {
			continue
		}
		prov, ok := findProvider(w.providers, *m.Provider)
		fetcher, canFetch := prov.Sender.(ReportFetcher)
		if !ok || !canFetch {
			skip[*m.Provider] = true
			continue
		}
		var rep *Report
		err := prov.call(ctx, true, func(ctx context.Context) error {
			var err error
			rep, err = fetcher.FetchReport(ctx, *m.ProviderMessageID)
			return err
		})
		if err != nil {
			var se *SendError
			if errors.As(err, &se) && (se.Class == ClassUnavailable || se.Class == ClassThrottled) {
				skip[*m.Provider] = true
				continue
			}
			w.logger.WarnContext(ctx, "status lookup failed", slog.Int64("message_id", m.ID), slog.String("vendor", *m.Provider), slog.String("error", err.Error()))
			continue
		}
		err = pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
			if rep != nil {
				if err := ApplyReport(ctx, w.q, tx, *rep, nil); err != nil && !errors.Is(err, pgx.ErrNoRows) {
					return err
				}
			}
			return w.q.MessageMarkReconciled(ctx, tx, m.ID)
		})
		if err != nil {
			return fmt.Errorf("error recording reconciled status: %w", err)
		}
		applied++
	}
	if applied > 0 {
		w.logger.InfoContext(ctx, "reconciled message statuses", slog.Int("messages", applied))
	}
	return nil
}

package wearables

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/jobs"
)

// BackfillWorker works wearable_backfill jobs.
type BackfillWorker struct {
	river.WorkerDefaults[jobs.WearableBackfillArgs]
	s *Service
}

// Work enqueues day syncs from each type's cursor (or the backfill horizon).
func (w *BackfillWorker) Work(ctx context.Context, job *river.Job[jobs.WearableBackfillArgs]) error {
	s := w.s
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		conn, err := s.q.ConnectionGetForUpdate(ctx, tx, job.Args.ConnectionID)
		if errors.Is(err, pgx.ErrNoRows) {
			return complete(ctx, tx, job)
		}
		if err != nil {
			return err
		}
		if conn.Status != "active" {
			return complete(ctx, tx, job)
		}
		now := s.now()
		horizon := dayFloor(now.AddDate(0, 0, -s.cfg.BackfillDays))
		cur := cursors(conn.Cursors)
		i := 0
		for _, t := range s.cfg.DataTypes {
			c := cur[t]
			if c.Disabled != "" {
				continue
			}
			from := horizon
			if c.Until != nil && c.Until.After(horizon) {
				from = *c.Until // resume where the connection stopped
			}
			if err := s.q.ConnectionSetCursorStart(ctx, tx, db.ConnectionSetCursorStartParams{ID: conn.ID, DataType: t, Until: dayFloor(from)}); err != nil {
				return err
			}
			// Newest first: the days a clinician looks at arrive first.
			wins := dayWindows(from, now)
			for j := len(wins) - 1; j >= 0; j-- {
				delay := time.Duration(i) * s.cfg.BackfillSpacing
				i++
				if err := insert(ctx, tx, jobs.WearableSyncArgs{ConnectionID: conn.ID, DataType: t, Start: wins[j][0], End: wins[j][1]},
					after(delay)); err != nil {
					return err
				}
			}
		}
		return complete(ctx, tx, job)
	})
}

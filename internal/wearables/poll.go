package wearables

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/jobs"
)

// PollWorker works wearable_poll jobs.
type PollWorker struct {
	river.WorkerDefaults[jobs.WearablePollArgs]
	s *Service
}

// Work is the safety net: syncs for recent days, stale flags, summaries.
func (w *PollWorker) Work(ctx context.Context, job *river.Job[jobs.WearablePollArgs]) error {
	s := w.s
	now := s.now()
	conns, err := s.q.ConnectionsToPoll(ctx, s.pool)
	if err != nil {
		return fmt.Errorf("error listing connections: %w", err)
	}
	for _, conn := range conns {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			cur := cursors(conn.Cursors)
			for _, t := range s.cfg.DataTypes {
				c := cur[t]
				if c.Disabled != "" {
					continue
				}
				from := now.Add(-s.cfg.PollLookback)
				if c.Until != nil && c.Until.Before(from) && c.Until.After(now.AddDate(0, 0, -s.cfg.BackfillDays)) {
					from = *c.Until // a gap the cursor has not passed yet
				}
				for _, win := range dayWindows(from, now) {
					if err := insert(ctx, tx, jobs.WearableSyncArgs{ConnectionID: conn.ID, DataType: t, Start: win[0], End: win[1]}, nil); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		stale, err := s.q.ConnectionsMarkStale(ctx, tx, now.Add(-s.cfg.StaleAfter))
		if err != nil {
			return err
		}
		for _, c := range stale {
			data, _ := json.Marshal(map[string]any{"connection_id": c.ID, "provider": c.Provider})
			if err := s.q.WearableEmitEvent(ctx, tx, db.WearableEmitEventParams{Kind: "device.stale", Subject: fmt.Sprintf("patient/%d", c.PatientID), Data: data}); err != nil {
				return err
			}
		}
		ids, err := s.q.ConnectionsWithUnsummarized(ctx, tx)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := insert(ctx, tx, jobs.WearableSummarizeArgs{ConnectionID: id}, nil); err != nil {
				return err
			}
		}
		return s.q.OAuthCleanup(ctx, tx)
	})
}

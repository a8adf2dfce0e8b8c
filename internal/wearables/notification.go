package wearables

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/googlehealth"
	"github.com/switchboard-health/switchboard/jobs"
)

// NotificationWorker works wearable_notification jobs.
type NotificationWorker struct {
	river.WorkerDefaults[jobs.WearableNotificationArgs]
	s *Service
}

// Work turns one stored notification into syncs.
func (w *NotificationWorker) Work(ctx context.Context, job *river.Job[jobs.WearableNotificationArgs]) error {
	s := w.s
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		hook, err := s.q.WebhookGetForUpdate(ctx, tx, job.Args.WebhookID)
		if errors.Is(err, pgx.ErrNoRows) {
			return complete(ctx, tx, job)
		}
		if err != nil {
			return err
		}
		if hook.State != "pending" {
			return complete(ctx, tx, job)
		}
		notes, err := googlehealth.ParseNotifications(hook.RawBody)
		state := "processed"
		if err != nil {
			state = "ignored"
		}
		enabled := map[string]bool{}
		for _, t := range s.cfg.DataTypes {
			enabled[t] = true
		}
		any := false
		for _, n := range notes {
			if !enabled[n.DataType] {
				continue
			}
			conn, err := s.q.ConnectionGetByExternalUser(ctx, tx, db.ConnectionGetByExternalUserParams{Provider: googlehealth.Provider, ExternalUserID: &n.HealthUserID})
			if errors.Is(err, pgx.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			if conn.Status != "active" && conn.Status != "error" {
				continue
			}
			windows := map[[2]time.Time]bool{}
			for _, iv := range n.Intervals {
				var from, to time.Time
				switch {
				case iv.PhysicalTimeInterval != nil:
					from, to = iv.PhysicalTimeInterval.StartTime, iv.PhysicalTimeInterval.EndTime
				case iv.CivilDateTimeInterval != nil && !iv.CivilDateTimeInterval.Start.Date.IsZero():
					from = iv.CivilDateTimeInterval.Start.Date.Time(time.UTC).Add(-14 * time.Hour)
					to = iv.CivilDateTimeInterval.End.Date.Time(time.UTC).Add(14 * time.Hour)
				default:
					continue
				}
				if !to.After(from) {
					to = from.Add(time.Second)
				}
				for _, win := range dayWindows(from, to) {
					windows[win] = true
				}
			}
			if len(windows) == 0 {
				now := s.now()
				windows[[2]time.Time{dayFloor(now), dayFloor(now).Add(24 * time.Hour)}] = true
			}
			for win := range windows {
				any = true
				// A short debounce lets a burst collapse into one job.
				if err := insert(ctx, tx, jobs.WearableSyncArgs{ConnectionID: conn.ID, DataType: n.DataType, Start: win[0], End: win[1], Replace: n.Operation == "DELETE"},
					after(s.cfg.NotifyDelay)); err != nil {
					return err
				}
			}
		}
		if !any && state == "processed" {
			state = "ignored"
		}
		if err := s.q.WebhookMarkDone(ctx, tx, db.WebhookMarkDoneParams{ID: hook.ID, State: state}); err != nil {
			return err
		}
		return complete(ctx, tx, job)
	})
}

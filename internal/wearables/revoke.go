package wearables

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/jobs"
)

// RevokeWorker works wearable_revoke jobs.
type RevokeWorker struct {
	river.WorkerDefaults[jobs.WearableRevokeArgs]
	s                *Service
	unavailableLimit time.Duration
}

// Work revokes the grant at Google, then erases the tokens.
func (w *RevokeWorker) Work(ctx context.Context, job *river.Job[jobs.WearableRevokeArgs]) error {
	s := w.s
	conn, err := s.q.ConnectionGet(ctx, s.pool, job.Args.ConnectionID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	sealed, column := conn.RefreshTokenSealed, "refresh_token"
	if sealed == nil {
		sealed, column = conn.AccessTokenSealed, "access_token"
	}
	if sealed != nil && conn.Status == "revoked" {
		tok, err := s.open(sealed, conn.ID, column)
		if err != nil {
			_ = river.MetadataSet(ctx, "outcome_class", "permanent")
			return river.JobCancel(err)
		}
		err = s.call(ctx, func(ctx context.Context) error { return s.oauth.Revoke(ctx, tok) })
		var ue *resilience.UnavailableError
		if errors.As(err, &ue) {
			return resilience.Snooze(ctx, job.JobRow, ue, w.unavailableLimit)
		}
		if err != nil {
			return fmt.Errorf("error revoking google token: %w", err)
		}
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if conn.Status == "revoked" {
			if err := s.q.ConnectionClearTokens(ctx, tx, conn.ID); err != nil {
				return err
			}
		}
		return complete(ctx, tx, job)
	})
}

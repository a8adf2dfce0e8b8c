package wearables

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/jobs"
)

// IngestWorker works apple_health_ingest jobs.
type IngestWorker struct {
	river.WorkerDefaults[jobs.AppleHealthIngestArgs]
	s *Service
}

// Work promotes an upload's samples and applies its deletions.
func (w *IngestWorker) Work(ctx context.Context, job *river.Job[jobs.AppleHealthIngestArgs]) error {
	s := w.s
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		up, err := s.q.AppleUploadGetForUpdate(ctx, tx, job.Args.UploadID)
		if errors.Is(err, pgx.ErrNoRows) {
			_ = river.MetadataSet(ctx, "outcome_class", "permanent")
			return river.JobCancel(fmt.Errorf("apple health upload %d does not exist", job.Args.UploadID))
		}
		if err != nil {
			return err
		}
		if up.State == "processed" {
			return complete(ctx, tx, job)
		}
		ids, err := s.q.SamplesOfUpload(ctx, tx, &up.ID)
		if err != nil {
			return err
		}
		if _, err := s.promote(ctx, tx, ids); err != nil {
			return err
		}
		hf, err := s.markDeleted(ctx, tx, up.ConnectionID, SourceApple, up.Deleted)
		if err != nil {
			return err
		}
		if up.NewCount > 0 {
			if err := s.q.ConnectionSyncSucceeded(ctx, tx, db.ConnectionSyncSucceededParams{
				ID: up.ConnectionID, GotData: true, DataType: "apple_health", WindowStart: up.ReceivedAt, WindowEnd: up.ReceivedAt,
			}); err != nil {
				return err
			}
		}
		if hf || up.NewCount > 0 {
			if err := insert(ctx, tx, jobs.WearableSummarizeArgs{ConnectionID: up.ConnectionID}, after(s.cfg.SummarizeDelay)); err != nil {
				return err
			}
		}
		if err := s.q.AppleUploadMarkProcessed(ctx, tx, up.ID); err != nil {
			return err
		}
		return complete(ctx, tx, job)
	})
}

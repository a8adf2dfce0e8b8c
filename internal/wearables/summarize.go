package wearables

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/jobs"
)

// SummarizeWorker works wearable_summarize jobs.
type SummarizeWorker struct {
	river.WorkerDefaults[jobs.WearableSummarizeArgs]
	s *Service
}

// Work summarizes a connection's closed periods.
func (w *SummarizeWorker) Work(ctx context.Context, job *river.Job[jobs.WearableSummarizeArgs]) error {
	s := w.s
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		conn, err := s.q.ConnectionGet(ctx, tx, job.Args.ConnectionID)
		if errors.Is(err, pgx.ErrNoRows) {
			return complete(ctx, tx, job)
		}
		if err != nil {
			return err
		}
		p, err := s.q.PatientGet(ctx, tx, conn.PatientID)
		if err != nil {
			return err
		}
		if _, err := s.summarize(ctx, tx, conn, p.ExternalRef); err != nil {
			return err
		}
		return complete(ctx, tx, job)
	})
}

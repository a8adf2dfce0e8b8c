package wearables

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// complete completes job in tx, so the job ends with the domain writes it
// made or not at all.
func complete[T river.JobArgs](ctx context.Context, tx pgx.Tx, job *river.Job[T]) error {
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
		return fmt.Errorf("error completing job: %w", err)
	}
	return nil
}

// insert enqueues a job in tx with the client of the running job.
func insert(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) error {
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	if _, err := client.InsertTx(ctx, tx, args, opts); err != nil {
		return fmt.Errorf("error inserting %s job: %w", args.Kind(), err)
	}
	return nil
}

// after schedules a job d from now; nil (now) when d is not positive.
func after(d time.Duration) *river.InsertOpts {
	if d <= 0 {
		return nil
	}
	return &river.InsertOpts{ScheduledAt: time.Now().Add(d)}
}

func ptr[T any](v T) *T { return &v }

package sms

import (
	"encoding/json"
	"errors"
	"fmt"

	"context"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/jobs"
)

// The fence. Every write that decides or settles a send (claim, attempt
// insert, acceptance, reconciliation, failure, failover, end) is made under
// the message's row lock and only while the run that makes it still holds
// the message (SendRunsHolding): the message's job is the run's job and
// River's row of it still shows the run. "The run" is River's own state:
// the job id, its attempt and the snooze count River keeps in its metadata
// (a snooze does not count as an attempt). See docs/sms.md "The fence".

// run is one run of an sms_send job, as River numbers it.
type run struct {
	jobID   int64
	attempt int
	snoozes int
}

// runOf is the run job is.
func runOf(job *river.Job[jobs.SMSSendArgs]) run {
	var meta struct {
		Snoozes int `json:"snoozes"`
	}
	_ = json.Unmarshal(job.Metadata, &meta)
	return run{jobID: job.ID, attempt: job.Attempt, snoozes: meta.Snoozes}
}

// errLostRun ends a run that no longer holds its message: River rescued
// the job (or a later run has it). Nothing was written; the error makes the
// job run again, and that run decides from what is recorded.
var errLostRun = errors.New("this run of the job no longer holds the message (rescued or superseded); nothing written")

// held is a message and the run that holds it.
type held struct {
	messageID int64
	run       run
}

// holding returns which of the messages ids (each worked by runs[i]) their
// runs still hold. The messages must be locked by the transaction already.
func (w *SendWorker) holding(ctx context.Context, tx pgx.Tx, ids []int64, runs []run) (map[held]bool, error) {
	p := db.SendRunsHoldingParams{MessageIds: ids}
	for _, r := range runs {
		p.JobIds = append(p.JobIds, r.jobID)
		p.Attempts = append(p.Attempts, int32(r.attempt))
		p.Snoozes = append(p.Snoozes, int32(r.snoozes))
	}
	rows, err := w.q.SendRunsHolding(ctx, tx, p)
	if err != nil {
		return nil, fmt.Errorf("error checking the job's run: %w", err)
	}
	out := make(map[held]bool, len(rows))
	for _, r := range rows {
		out[held{r.ID, run{jobID: r.JobID, attempt: int(r.Attempt), snoozes: int(r.Snoozes)}}] = true
	}
	return out, nil
}

// hold checks that r still holds message id (locked by tx already).
func (w *SendWorker) hold(ctx context.Context, tx pgx.Tx, id int64, r run) error {
	h, err := w.holding(ctx, tx, []int64{id}, []run{r})
	if err != nil {
		return err
	}
	if !h[held{id, r}] {
		return errLostRun
	}
	return nil
}

// fenced runs fn in a transaction that holds the job's message: locked,
// and still held by this run.
func (w *SendWorker) fenced(ctx context.Context, job *river.Job[jobs.SMSSendArgs], fn func(pgx.Tx) error) error {
	return w.tx(ctx, func(tx pgx.Tx) error {
		if err := w.q.MessagesLock(ctx, tx, []int64{job.Args.MessageID}); err != nil {
			return fmt.Errorf("error locking message: %w", err)
		}
		if err := w.hold(ctx, tx, job.Args.MessageID, runOf(job)); err != nil {
			return err
		}
		return fn(tx)
	})
}

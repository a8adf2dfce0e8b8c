package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/database"
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
	rows, err := w.q.SendRunsHolding(ctx, tx, holdingParams(ids, runs))
	if err != nil {
		return nil, fmt.Errorf("error checking the job's run: %w", err)
	}
	return heldBy(rows), nil
}

// holdingParams asks SendRunsHolding whether runs[i] holds message ids[i].
func holdingParams(ids []int64, runs []run) db.SendRunsHoldingParams {
	p := db.SendRunsHoldingParams{MessageIds: ids}
	for _, r := range runs {
		p.JobIds = append(p.JobIds, r.jobID)
		p.Attempts = append(p.Attempts, int32(r.attempt))
		p.Snoozes = append(p.Snoozes, int32(r.snoozes))
	}
	return p
}

// heldBy is SendRunsHolding's answer as a set.
func heldBy(rows []db.SendRunsHoldingRow) map[held]bool {
	out := make(map[held]bool, len(rows))
	for _, r := range rows {
		out[held{r.ID, run{jobID: r.JobID, attempt: int(r.Attempt), snoozes: int(r.Snoozes)}}] = true
	}
	return out
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

// begin locks the message again, decides again (a shared claim or another
// run of the job may have acted since prepare) and, if it is still to be
// sent with nothing to reconcile, records the attempt, committed before the
// request leaves. Otherwise it returns what the new decision says (errDone,
// a snooze, a cancellation) and nothing is sent.
func (w *SendWorker) begin(ctx context.Context, job *river.Job[jobs.SMSSendArgs], prov Provider) (db.MessageAttempt, plan, error) {
	var (
		att    db.MessageAttempt
		p      plan
		result error
	)
	err := w.tx(ctx, func(tx pgx.Tx) error {
		var err error
		p, result, err = w.decideLocked(ctx, tx, job)
		if err != nil || result != nil {
			return err
		}
		if p.unresolved != nil {
			// Another run left an attempt to reconcile since prepare:
			// the job's next run asks its provider first.
			result = fmt.Errorf("message %d has an unresolved attempt %d made by another run; reconciling first", job.Args.MessageID, p.unresolved.ID)
			return nil
		}
		atts, err := w.claimRows(ctx, tx, []claimReq{{messageID: job.Args.MessageID, run: runOf(job), provider: prov.Name()}})
		if err != nil {
			return err
		}
		att = atts[job.Args.MessageID]
		return nil
	})
	if err == nil {
		err = result
	}
	return att, p, err
}

// claimReq asks for a message to be claimed for sending through provider.
type claimReq struct {
	messageID int64
	run       run
	provider  string
}

// claim is a claimed message: what to send and its attempt, committed.
type claim struct {
	ok   bool // false: nothing was written, the job decides alone
	plan plan
	att  db.MessageAttempt
}

// claimBatch claims, in one transaction, every message of reqs that is to
// be sent now with nothing to reconcile first: it records their attempts. The others (and a second job for a message already
// in the batch) are left untouched for their jobs to decide alone.
func (w *SendWorker) claimBatch(ctx context.Context, reqs []claimReq) ([]claim, error) {
	out := make([]claim, len(reqs))
	ids := make([]int64, len(reqs))
	runs := make([]run, len(reqs))
	for i, r := range reqs {
		ids[i], runs[i] = r.messageID, r.run
	}
	// Two round trips: the locks and what the decision reads (each read
	// after the locks, in a statement of its own), then the attempts with
	// the commit.
	err := database.InPipe(ctx, w.pool, func(p *database.Pipe) error {
		states, holds, err := w.loadForSend(ctx, p, ids, runs)
		if err != nil {
			return err
		}
		now := time.Now()
		var (
			claimed []claimReq
			plans   []plan
			index   = map[int64]int{}
		)
		for i, r := range reqs {
			st, found := states[r.messageID]
			if _, dup := index[r.messageID]; !found || dup || !holds[held{r.messageID, r.run}] {
				continue
			}
			p, v := w.decide(st, now)
			if v.decision != decideSend || p.unresolved != nil {
				continue
			}
			index[r.messageID] = i
			claimed = append(claimed, r)
			plans = append(plans, p)
		}
		if len(claimed) == 0 {
			return nil
		}
		var started []db.MessageAttempt
		if err := p.Commit(ctx, func(q db.DBTX) (err error) {
			started, err = w.q.AttemptsStart(ctx, q, startParams(claimed))
			return err
		}); err != nil {
			return fmt.Errorf("error recording attempts: %w", err)
		}
		byMessage, err := attemptsByMessage(started, len(claimed))
		if err != nil {
			return err
		}
		for j, r := range claimed {
			out[index[r.messageID]] = claim{ok: true, plan: plans[j], att: byMessage[r.messageID]}
		}
		return nil
	}, database.GenericPlans())
	if err != nil {
		return nil, err
	}
	return out, nil
}

// claimRows records the attempts of reqs, returned by message id. The
// messages themselves are not written: an attempt without an outcome is
// the mark of a request that may be in flight (cancel_sms and every later
// run honour it), and the message is written once, when the provider has
// accepted it.
func (w *SendWorker) claimRows(ctx context.Context, tx pgx.Tx, reqs []claimReq) (map[int64]db.MessageAttempt, error) {
	atts, err := w.q.AttemptsStart(ctx, tx, startParams(reqs))
	if err != nil {
		return nil, fmt.Errorf("error recording attempts: %w", err)
	}
	return attemptsByMessage(atts, len(reqs))
}

// startParams records an attempt for each of reqs.
func startParams(reqs []claimReq) db.AttemptsStartParams {
	start := db.AttemptsStartParams{}
	for _, r := range reqs {
		start.MessageIds = append(start.MessageIds, r.messageID)
		start.Providers = append(start.Providers, r.provider)
		start.JobIds = append(start.JobIds, r.run.jobID)
		start.JobAttempts = append(start.JobAttempts, int32(r.run.attempt))
	}
	return start
}

// attemptsByMessage is AttemptsStart's rows by message id; n messages
// were asked for.
func attemptsByMessage(atts []db.MessageAttempt, n int) (map[int64]db.MessageAttempt, error) {
	out := make(map[int64]db.MessageAttempt, len(atts))
	for _, a := range atts {
		out[a.MessageID] = a
	}
	if len(out) != n {
		return nil, fmt.Errorf("error recording attempts: %d rows for %d messages", len(out), n)
	}
	return out, nil
}

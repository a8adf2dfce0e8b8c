package sms

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/database"
	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/jobs"
)

// acceptReq is an attempt its provider accepted.
type acceptReq struct {
	attemptID, messageID int64 // attemptID 0: adopted, attempts settled apart
	run                  run   // the run that sent it
	provider             string
	acc                  Accepted
	plan                 plan // the segments and encoding computed before sending
}

// acceptBatch records, in one transaction, what the providers accepted.
// A request whose run lost its message gets errLostRun; the results are in
// the order of reqs.
func (w *SendWorker) acceptBatch(ctx context.Context, reqs []acceptReq) ([]error, error) {
	var lost map[int64]bool
	err := database.InPipe(ctx, w.pool, func(p *database.Pipe) error {
		var err error
		lost, err = w.acceptIn(ctx, p, reqs)
		return err
	}, database.GenericPlans())
	if err != nil {
		return nil, err
	}
	out := make([]error, len(reqs))
	for i, r := range reqs {
		if lost[r.messageID] {
			out[i] = errLostRun
		}
	}
	return out, nil
}

// acceptRows is acceptIn on tx, whose caller writes more before it commits.
func (w *SendWorker) acceptRows(ctx context.Context, tx pgx.Tx, reqs []acceptReq) (map[int64]bool, error) {
	return w.acceptIn(ctx, database.OnTx(tx), reqs)
}

// acceptIn locks the messages of reqs (in id order, as every writer of
// several messages takes them), and records the acceptances of those their
// runs still hold; it returns the others (nothing written). In a pipe it is
// three round trips: the locks with the run check, the attempts, the
// messages with the commit.
func (w *SendWorker) acceptIn(ctx context.Context, s database.Steps, reqs []acceptReq) (map[int64]bool, error) {
	reqs = slices.SortedFunc(slices.Values(reqs), func(a, b acceptReq) int { return cmp.Compare(a.messageID, b.messageID) })
	ids := make([]int64, len(reqs))
	runs := make([]run, len(reqs))
	for i, r := range reqs {
		ids[i], runs[i] = r.messageID, r.run
	}
	var holdBy []db.SendRunsHoldingRow
	if err := s.Send(ctx,
		func(q db.DBTX) error { return w.q.MessagesLock(ctx, q, ids) },
		func(q db.DBTX) (err error) {
			holdBy, err = w.q.SendRunsHolding(ctx, q, holdingParams(ids, runs))
			return err
		},
	); err != nil {
		return nil, fmt.Errorf("error locking messages: %w", err)
	}
	holds := heldBy(holdBy)
	lost := map[int64]bool{}
	var kept []acceptReq
	for _, r := range reqs {
		if !holds[held{r.messageID, r.run}] {
			lost[r.messageID] = true
			w.logger.WarnContext(ctx, "a send result arrived after its run lost the message; not applied (the next run reconciles)",
				slog.Int64("message_id", r.messageID), slog.Int64("attempt_id", r.attemptID), slog.String("vendor", r.provider))
			continue
		}
		kept = append(kept, r)
	}
	return lost, w.acceptMessages(ctx, s, kept)
}

// acceptMessages records acceptances on the attempts and messages, which
// the transaction has locked for runs that hold them.
func (w *SendWorker) acceptMessages(ctx context.Context, s database.Steps, reqs []acceptReq) error {
	atts := attemptsAcceptParams(reqs)
	var took []int64
	if len(atts.Ids) > 0 {
		if err := s.Send(ctx, func(q db.DBTX) (err error) { took, err = w.q.AttemptsAccept(ctx, q, atts); return err }); err != nil {
			return fmt.Errorf("error recording attempts: %w", err)
		}
	}
	msgs := w.messagesAcceptParams(ctx, reqs, took)
	if len(msgs.Ids) == 0 {
		return nil
	}
	if err := s.Last(ctx, func(q db.DBTX) error { return w.q.MessagesAccept(ctx, q, msgs) }); err != nil {
		return fmt.Errorf("error recording provider ids: %w", err)
	}
	return nil
}

// attemptsAcceptParams accepts the attempts of reqs (adoptions have none).
func attemptsAcceptParams(reqs []acceptReq) db.AttemptsAcceptParams {
	atts := db.AttemptsAcceptParams{}
	for _, r := range reqs {
		if r.attemptID != 0 {
			atts.Ids = append(atts.Ids, r.attemptID)
			atts.ProviderMessageIds = append(atts.ProviderMessageIds, r.acc.ProviderMessageID)
		}
	}
	return atts
}

// messagesAcceptParams records on their messages the acceptances of reqs
// whose attempts took them (AttemptsAccept returned took).
func (w *SendWorker) messagesAcceptParams(ctx context.Context, reqs []acceptReq, took []int64) db.MessagesAcceptParams {
	taken := make(map[int64]bool, len(took))
	for _, id := range took {
		taken[id] = true
	}
	msgs := db.MessagesAcceptParams{}
	for _, r := range reqs {
		if r.attemptID != 0 && !taken[r.attemptID] {
			// The run that made this attempt gave up before its result
			// committed, and a later run has settled the attempt since:
			// that run's decision stands.
			w.logger.WarnContext(ctx, "a send result arrived after a later run settled its attempt; not applied",
				slog.Int64("message_id", r.messageID), slog.Int64("attempt_id", r.attemptID),
				slog.String("vendor", r.provider), slog.String("provider_message_id", r.acc.ProviderMessageID))
			continue
		}
		msgs.Ids = append(msgs.Ids, r.messageID)
		msgs.Providers = append(msgs.Providers, r.provider)
		msgs.ProviderMessageIds = append(msgs.ProviderMessageIds, r.acc.ProviderMessageID)
		msgs.Segments = append(msgs.Segments, int32(max(r.acc.Segments, 0)))
		msgs.ComputedSegments = append(msgs.ComputedSegments, int32(r.plan.segments))
		msgs.Encodings = append(msgs.Encodings, r.plan.encoding)
	}
	return msgs
}

// accepted records the provider's id and completes the job in one
// transaction. If that commit fails the job runs again, finds the attempt
// unresolved and adopts the message from the provider instead of resending.
func (w *SendWorker) accepted(ctx context.Context, job *river.Job[jobs.SMSSendArgs], prov Provider, att db.MessageAttempt, acc Accepted, p plan) error {
	return w.tx(ctx, func(tx pgx.Tx) error {
		lost, err := w.acceptRows(ctx, tx, []acceptReq{{attemptID: att.ID, messageID: job.Args.MessageID, run: runOf(job), provider: prov.Name(), acc: acc, plan: p}})
		if err != nil {
			return err
		}
		if lost[job.Args.MessageID] {
			return errLostRun
		}
		return w.complete(ctx, tx, job)
	})
}

func (w *SendWorker) adopt(ctx context.Context, job *river.Job[jobs.SMSSendArgs], prov Provider, attemptID int64, acc *Accepted, p plan) error {
	return w.fenced(ctx, job, func(tx pgx.Tx) error {
		n, err := w.q.AttemptSettle(ctx, tx, db.AttemptSettleParams{ID: attemptID, Outcome: ptr("reconciled_found"), ProviderMessageID: &acc.ProviderMessageID})
		if err != nil {
			return fmt.Errorf("error recording reconciliation: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("attempt %d was settled by another run while its provider was asked; deciding again", attemptID)
		}
		if err := w.acceptMessages(ctx, database.OnTx(tx), []acceptReq{{messageID: job.Args.MessageID, provider: prov.Name(), acc: *acc, plan: p}}); err != nil {
			return err
		}
		return w.complete(ctx, tx, job)
	})
}

func finishParams(att db.MessageAttempt, se *SendError, outcome string) db.AttemptFinishParams {
	p := db.AttemptFinishParams{ID: att.ID, Outcome: &outcome, ErrorCode: nilIfEmpty(se.Code)}
	if se.HTTPStatus != 0 {
		p.HttpStatus = ptr(int32(se.HTTPStatus))
	}
	return p
}

// notAccepted records an attempt the provider provably did not accept,
// before the next provider is tried.
func (w *SendWorker) notAccepted(ctx context.Context, job *river.Job[jobs.SMSSendArgs], att db.MessageAttempt, se *SendError) error {
	outcome := "not_sent"
	if se.Class == ClassPermanent {
		outcome = "permanent"
	}
	return w.fenced(ctx, job, func(tx pgx.Tx) error {
		if err := w.q.AttemptFinish(ctx, tx, finishParams(att, se, outcome)); err != nil {
			return fmt.Errorf("error recording attempt: %w", err)
		}
		return w.q.MessageRequeue(ctx, tx, job.Args.MessageID)
	})
}

// failed settles a failed send with no failover left: a recipient's
// failure ends the message; any other leaves it queued (an ambiguous
// attempt stays to be reconciled) and outcome says what River does.
func (w *SendWorker) failed(ctx context.Context, job *river.Job[jobs.SMSSendArgs], att db.MessageAttempt, se *SendError) error {
	ended := false
	err := w.fenced(ctx, job, func(tx pgx.Tx) error {
		if se.Class == ClassRecipient {
			status := StatusFailed
			if se.Reason == ReasonOptedOut {
				status = StatusBlockedOptedOut
				if err := w.optOut(ctx, tx, job.Args.MessageID, se.Provider+"_error_"+se.Code); err != nil {
					return err
				}
			}
			if err := w.q.AttemptFinish(ctx, tx, finishParams(att, se, "recipient_rejected")); err != nil {
				return fmt.Errorf("error recording attempt: %w", err)
			}
			if err := w.finish(ctx, tx, job.Args.MessageID, status, nilIfEmpty(se.Code), se.Reason); err != nil {
				return err
			}
			ended = true
			return w.complete(ctx, tx, job)
		}
		if err := w.q.AttemptFinish(ctx, tx, finishParams(att, se, attemptOutcome(se.Class))); err != nil {
			return fmt.Errorf("error recording attempt: %w", err)
		}
		if se.Class != ClassAmbiguous {
			// The attempt stays unresolved when ambiguous: the next run
			// asks the provider first.
			if err := w.q.MessageRequeue(ctx, tx, job.Args.MessageID); err != nil {
				return fmt.Errorf("error requeueing message: %w", err)
			}
		}
		return nil
	})
	if err != nil || ended {
		return err
	}
	return w.outcome(ctx, job, se)
}

// HoldRecordsLag is the hold_reason of a job whose look-up found nothing
// while the provider's records may still lag (ErrRecordsNotSettled): its
// absence, and so a resend, waits until they have settled
// (TELNYX_DETAIL_RECORD_LAG).
const HoldRecordsLag = "provider_records_lag"

// attemptOutcome is the recorded outcome of an attempt that failed with
// class c (not a recipient's failure).
func attemptOutcome(c Class) string {
	switch c {
	case ClassAmbiguous:
		return "ambiguous"
	case ClassThrottled:
		return "throttled"
	case ClassUnavailable, ClassRetryable:
		return "not_sent"
	default:
		return "permanent"
	}
}

// outcome is the one mapping from a provider failure (of a send, after
// failover, or of a look-up) to what River does with the job:
//
//   - throttled: snooze for the provider's Retry-After, no attempt spent;
//   - unavailable (breaker open, paused): snooze until the destination may
//     be ready, up to the kind's unavailable limit, then a dead letter of
//     class unavailable;
//   - permanent (our credentials, request or configuration) and anything
//     unknown: cancel into a dead letter of class permanent;
//   - ambiguous and retryable: an error, so River retries with NextRetry's
//     backoff (an ambiguous attempt is reconciled first).
func (w *SendWorker) outcome(ctx context.Context, job *river.Job[jobs.SMSSendArgs], se *SendError) error {
	switch se.Class {
	case ClassThrottled:
		reason := resilience.HoldThrottled
		if errors.Is(se, ErrRecordsNotSettled) {
			reason = HoldRecordsLag
		}
		return resilience.HoldFor(ctx, reason, se.Provider, se.RetryAfter)
	case ClassUnavailable:
		return resilience.Snooze(ctx, job.JobRow, se.Err, w.cfg.UnavailableLimit)
	case ClassAmbiguous, ClassRetryable:
		return fmt.Errorf("error sending sms: %w", se)
	default:
		_ = river.MetadataSet(ctx, "outcome_class", string(ClassPermanent))
		return river.JobCancel(fmt.Errorf("error sending sms: %w", se))
	}
}

func (w *SendWorker) optOut(ctx context.Context, tx pgx.Tx, messageID int64, source string) error {
	msg, err := w.q.MessageGet(ctx, tx, messageID)
	if err != nil {
		return fmt.Errorf("error loading message: %w", err)
	}
	if err := w.q.ConsentSet(ctx, tx, db.ConsentSetParams{PhoneE164: msg.ToE164, OptedOut: true, Source: source}); err != nil {
		return fmt.Errorf("error recording opt-out: %w", err)
	}
	return nil
}

// finish ends the message with a final status and announces it to the app.
func (w *SendWorker) finish(ctx context.Context, tx pgx.Tx, id int64, status Status, code *string, reason string) error {
	if err := w.q.MessageFinish(ctx, tx, db.MessageFinishParams{ID: id, Status: string(status), ErrorCode: code, ErrorReason: nilIfEmpty(reason)}); err != nil {
		return fmt.Errorf("error finishing message: %w", err)
	}
	return emitFinal(ctx, w.q, tx, id, status, code, reason)
}

func (w *SendWorker) complete(ctx context.Context, tx pgx.Tx, job *river.Job[jobs.SMSSendArgs]) error {
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
		return fmt.Errorf("error completing job: %w", err)
	}
	return nil
}

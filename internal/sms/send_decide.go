package sms

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nyaruka/phonenumbers"
	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/database"
	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/jobs"
)

// plan is what prepare decided.
type plan struct {
	out        Outbound
	segments   int
	encoding   string
	unresolved *db.MessageAttempt // ask its provider about it before sending
	expired    bool               // not_after has passed
	optedOut   bool               // the recipient opted out (and this is no HELP answer)
}

// after is the index of the provider to try first once a look-up proved
// that att's provider has no copy: the next one in SMS_PROVIDERS (the first
// after the last) when att failed ambiguously on its provider's side, else
// the first.
func (w *SendWorker) after(att *db.MessageAttempt) int {
	if att.Outcome == nil || *att.Outcome != "ambiguous" || len(w.providers) < 2 {
		return 0
	}
	for i, p := range w.providers {
		if p.Name() == att.Provider {
			return (i + 1) % len(w.providers)
		}
	}
	return 0
}

// sendState is what deciding about one message reads, under its lock.
type sendState struct {
	msg        db.Message
	optedOut   bool               // its recipient opted out
	unresolved *db.MessageAttempt // its newest attempt without a known outcome
}

// loadForSend locks the messages of ids (in id order) and reads what
// deciding about them needs, and which of them runs[i] still hold. The
// attempts and the runs are read after the locks are held, each by a
// statement of its own: a job that waited for a lock must see the attempt
// the job before it committed. In a pipe the three are one round trip.
func (w *SendWorker) loadForSend(ctx context.Context, s database.Steps, ids []int64, runs []run) (map[int64]sendState, map[held]bool, error) {
	var (
		rows   []db.MessagesForSendRow
		atts   []db.MessageAttempt
		holdBy []db.SendRunsHoldingRow
	)
	if err := s.Send(ctx,
		func(q db.DBTX) (err error) { rows, err = w.q.MessagesForSend(ctx, q, ids); return err },
		func(q db.DBTX) (err error) { atts, err = w.q.AttemptsLatestUnresolved(ctx, q, ids); return err },
		func(q db.DBTX) (err error) {
			holdBy, err = w.q.SendRunsHolding(ctx, q, holdingParams(ids, runs))
			return err
		},
	); err != nil {
		return nil, nil, fmt.Errorf("error loading messages: %w", err)
	}
	return sendStates(rows, atts), heldBy(holdBy), nil
}

// sendStates is the messages rows (MessagesForSend) with their unresolved
// attempts (AttemptsLatestUnresolved, read after the messages' locks).
func sendStates(rows []db.MessagesForSendRow, atts []db.MessageAttempt) map[int64]sendState {
	out := make(map[int64]sendState, len(rows))
	for _, r := range rows {
		out[r.Message.ID] = sendState{msg: r.Message, optedOut: r.OptedOut}
	}
	for i := range atts {
		st, ok := out[atts[i].MessageID]
		if !ok {
			continue
		}
		st.unresolved = &atts[i]
		out[atts[i].MessageID] = st
	}
	return out
}

// decision is what is to be done with a message.
type decision int

const (
	decideSend     decision = iota // send it (after reconciling plan.unresolved, if set)
	decideComplete                 // nothing to do: it is final or accepted
	decideEnd                      // end it with verdict.status and reason
	decideSnooze                   // look again after verdict.wait
	decideCancel                   // an operator must act: verdict.err
)

type verdict struct {
	decision decision
	status   Status
	reason   string // the status reason of decideEnd; the hold reason of decideSnooze
	wait     time.Duration
	err      error
}

// decide is the send decision about a message, the same for a job deciding
// alone and for a shared claim.
func (w *SendWorker) decide(st sendState, now time.Time) (plan, verdict) {
	var p plan
	msg := st.msg
	// A re-run never calls a provider for a message it already has.
	if msg.ProviderMessageID != nil || isFinal(msg.Status) {
		return p, verdict{decision: decideComplete}
	}
	// A queued message with an unresolved attempt may have reached its
	// provider: it is not ended before the provider has been asked.
	queued := msg.Status == string(StatusQueued) && st.unresolved == nil
	p.expired = msg.NotAfter != nil && !now.Before(*msg.NotAfter)
	if p.expired && queued {
		return p, verdict{decision: decideEnd, status: StatusExpired, reason: ReasonExpired}
	}
	if msg.NotBefore != nil && now.Before(*msg.NotBefore) {
		return p, verdict{decision: decideSnooze, wait: msg.NotBefore.Sub(now), reason: resilience.HoldScheduled}
	}
	if !validNumber(msg.ToE164) && queued {
		return p, verdict{decision: decideEnd, status: StatusFailed, reason: ReasonInvalidNumber}
	}
	// HELP answers reach opted-out numbers; nothing else does.
	p.optedOut = st.optedOut && msg.Purpose != "help"
	if p.optedOut && queued {
		return p, verdict{decision: decideEnd, status: StatusBlockedOptedOut, reason: ReasonOptedOut}
	}
	if msg.Purpose == "app" && msg.TimeZone != nil && queued {
		if loc, err := time.LoadLocation(*msg.TimeZone); err == nil {
			if until := w.cfg.QuietHours.Until(now, loc); until.After(now) {
				if msg.NotAfter != nil && !until.Before(*msg.NotAfter) {
					// The window ends after the message's deadline:
					// wake at the deadline, which expires it.
					until = *msg.NotAfter
				}
				return p, verdict{decision: decideSnooze, wait: until.Sub(now), reason: resilience.HoldQuietHours}
			}
		}
	}
	if msg.Body == nil {
		return p, verdict{decision: decideCancel, err: fmt.Errorf("message %d has no body (erased by retention)", msg.ID)}
	}
	if att := st.unresolved; att != nil {
		if inFlight(att) && now.Sub(att.StartedAt) < w.cfg.InFlightGrace {
			// The request may still be in flight — in another process, or
			// queued at the provider's edge after our side gave up (an
			// ambiguous attempt): asking too early would miss the message
			// and send it twice. Wait until the grace ends, at most one
			// grace (a clock that ran ahead must not park the job).
			wait := min(w.cfg.InFlightGrace-now.Sub(att.StartedAt)+time.Second, w.cfg.InFlightGrace)
			return p, verdict{decision: decideSnooze, wait: wait, reason: resilience.HoldInFlight}
		}
		p.unresolved = att
	}
	p.out = Outbound{MessageID: msg.ID, To: msg.ToE164, Body: *msg.Body}
	p.segments, p.encoding = Segments(*msg.Body)
	if msg.NotAfter != nil {
		p.out.ValidityPeriod = msg.NotAfter.Sub(now)
	}
	return p, verdict{decision: decideSend}
}

// inFlight reports whether an attempt's request may still reach its
// provider: no outcome yet, or an ambiguous one (it left, the answer was
// lost). A held attempt waits for an operator, not for the grace.
func inFlight(att *db.MessageAttempt) bool {
	return att.Outcome == nil || *att.Outcome == "ambiguous"
}

// prepare locks the message and decides alone whether it is to be sent. It
// returns errDone when the job has been completed (message final, already
// accepted, cancelled, expired, invalid or opted out), and the newest
// unresolved attempt when its provider must be asked before anything is
// sent.
func (w *SendWorker) prepare(ctx context.Context, job *river.Job[jobs.SMSSendArgs]) (plan, error) {
	var (
		p      plan
		result error
	)
	err := w.tx(ctx, func(tx pgx.Tx) error {
		var err error
		p, result, err = w.decideLocked(ctx, tx, job)
		return err
	})
	if err != nil {
		return p, err
	}
	return p, result
}

// decideLocked locks the job's message, checks that this run still holds
// it, decides, and carries out any decision other than sending in tx. It
// returns the plan, and as result errDone (the job was completed in tx), a
// snooze or cancellation for River, or nil: send (after reconciling
// plan.unresolved, if set).
func (w *SendWorker) decideLocked(ctx context.Context, tx pgx.Tx, job *river.Job[jobs.SMSSendArgs]) (plan, error, error) {
	var p plan
	r := runOf(job)
	states, holds, err := w.loadForSend(ctx, database.OnTx(tx), []int64{job.Args.MessageID}, []run{r})
	if err != nil {
		return p, nil, err
	}
	st, ok := states[job.Args.MessageID]
	if !ok {
		_ = river.MetadataSet(ctx, "outcome_class", "permanent")
		return p, river.JobCancel(fmt.Errorf("message %d does not exist", job.Args.MessageID)), nil
	}
	if !holds[held{job.Args.MessageID, r}] {
		return p, nil, errLostRun
	}
	var v verdict
	p, v = w.decide(st, time.Now())
	switch v.decision {
	case decideComplete:
		return p, errDone, w.complete(ctx, tx, job)
	case decideEnd:
		if err := w.finish(ctx, tx, st.msg.ID, v.status, nil, v.reason); err != nil {
			return p, nil, err
		}
		return p, errDone, w.complete(ctx, tx, job)
	case decideSnooze:
		if st.unresolved != nil && inFlight(st.unresolved) {
			w.logger.DebugContext(ctx, "an attempt may still be in flight; waiting before asking its provider",
				slog.Int64("message_id", st.msg.ID), slog.Int64("attempt_id", st.unresolved.ID), slog.Duration("wait", v.wait))
		}
		return p, resilience.HoldFor(ctx, v.reason, "", v.wait), nil
	case decideCancel:
		_ = river.MetadataSet(ctx, "outcome_class", "permanent")
		return p, river.JobCancel(v.err), nil
	}
	return p, nil, nil
}

// validNumber checks a number beyond its syntax: a real numbering plan, a
// possible length and a valid range (libphonenumber's metadata).
func validNumber(e164 string) bool {
	num, err := phonenumbers.Parse(e164, "")
	return err == nil && phonenumbers.IsValidNumber(num)
}

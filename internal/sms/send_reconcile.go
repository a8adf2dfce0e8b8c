package sms

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/jobs"
)

// reconcile asks the provider of an unresolved attempt whether it accepted
// the message. It reports ended when the job is finished (adopted, or the
// message expired or was opted out meanwhile); otherwise sending may go on.
func (w *SendWorker) reconcile(ctx context.Context, job *river.Job[jobs.SMSSendArgs], p plan) (bool, error) {
	prov, ok := findProvider(w.providers, p.unresolved.Provider)
	if !ok {
		// Never resend without an answer: an operator must bring the
		// provider back or settle the message.
		return true, fmt.Errorf("error reconciling sms: provider %q of attempt %d is not configured", p.unresolved.Provider, p.unresolved.ID)
	}
	var cands []Candidate
	taken := w.takenElsewhere(prov, job.Args.MessageID)
	err := prov.call(ctx, true, func(ctx context.Context) error {
		var err error
		cands, err = prov.Sender.FindSent(ctx, w.outbound(p.out, prov), p.unresolved.StartedAt, taken)
		return err
	})
	if errors.Is(err, ErrLookupIncomplete) {
		return true, w.holdForOperator(ctx, job, prov, *p.unresolved, heldLookupIncomplete, 0)
	}
	if err != nil {
		return true, w.outcome(ctx, job, AsSendError(prov.Name(), fmt.Errorf("error reconciling sms with provider: %w", err)))
	}
	found, undecided, err := w.identify(ctx, taken, *p.unresolved, cands)
	if err != nil {
		return true, err
	}
	if undecided > 0 {
		return true, w.holdForOperator(ctx, job, prov, *p.unresolved, heldCopiesAlike, undecided)
	}
	if found != nil {
		w.logger.InfoContext(ctx, "adopted message the provider had accepted",
			slog.Int64("message_id", job.Args.MessageID), slog.String("vendor", prov.Name()), slog.Bool("tagged", found.Tagged))
		return true, w.adopt(ctx, job, prov, p.unresolved.ID, &found.Accepted, p)
	}
	// The provider never accepted it: send now, unless the message has
	// since expired or its recipient opted out. Only the attempt asked
	// about is settled; begin decides again before anything is sent.
	ended := false
	err = w.fenced(ctx, job, func(tx pgx.Tx) error {
		if _, err := w.q.AttemptSettle(ctx, tx, db.AttemptSettleParams{ID: p.unresolved.ID, Outcome: ptr("reconciled_absent")}); err != nil {
			return fmt.Errorf("error recording reconciliation: %w", err)
		}
		status, reason := StatusExpired, ReasonExpired
		switch {
		case p.expired:
		case p.optedOut:
			status, reason = StatusBlockedOptedOut, ReasonOptedOut
		default:
			return w.q.MessageRequeue(ctx, tx, p.out.MessageID)
		}
		ended = true
		if err := w.finish(ctx, tx, p.out.MessageID, status, nil, reason); err != nil {
			return err
		}
		return w.complete(ctx, tx, job)
	})
	return ended, err
}

// identify decides which of a provider's candidates is the copy of the
// message an attempt sent, by identity, never by content alone:
//
//   - a candidate another message has adopted (its provider id is on
//     another message or another message's attempt) is not this one's;
//   - a candidate the provider tagged with this message's status callback
//     URL (?m=<message id>) is this one's;
//   - otherwise the candidate created closest after the attempt started
//     wins (at the provider's precision: whole seconds for Twilio); one
//     created before it only when none was created after;
//   - two candidates that rank equal cannot be told apart: undecided is how
//     many there were, and the message is held for an operator.
//
// It returns nil, 0 when no candidate is left: the provider has no copy.
func (w *SendWorker) identify(ctx context.Context, taken Taken, att db.MessageAttempt, cands []Candidate) (*Candidate, int, error) {
	if len(cands) == 0 {
		return nil, 0, nil
	}
	ids := make([]string, len(cands))
	for i, c := range cands {
		ids[i] = c.ProviderMessageID
	}
	t, err := taken(ctx, ids)
	if err != nil {
		return nil, 0, fmt.Errorf("error reading adopted provider ids: %w", err)
	}
	left := slices.DeleteFunc(slices.Clone(cands), func(c Candidate) bool { return t[c.ProviderMessageID] })
	pick, tie := pickCandidate(left, att.StartedAt)
	if tie {
		return nil, len(left), nil
	}
	return pick, 0, nil
}

// takenElsewhere is the Taken of a look-up for message messageID on prov:
// the provider ids another message holds (on the message, or on one of its
// attempts). It remembers what it read, so identify's check of the
// candidates FindSent returns asks the database only about ids it has not
// seen.
func (w *SendWorker) takenElsewhere(prov Provider, messageID int64) Taken {
	known := map[string]bool{}
	return func(ctx context.Context, ids []string) (map[string]bool, error) {
		var ask []string
		for _, id := range ids {
			if _, ok := known[id]; !ok {
				ask = append(ask, id)
			}
		}
		if len(ask) > 0 {
			rows, err := w.q.ProviderIDsTakenElsewhere(ctx, w.pool, db.ProviderIDsTakenElsewhereParams{
				Provider: prov.Name(), ProviderMessageIds: ask, MessageID: messageID,
			})
			if err != nil {
				return nil, err
			}
			for _, id := range ask {
				known[id] = false
			}
			for _, id := range rows {
				known[id] = true
			}
		}
		out := make(map[string]bool, len(ids))
		for _, id := range ids {
			out[id] = known[id]
		}
		return out, nil
	}
}

// pickCandidate is identify's choice among candidates no other message
// adopted; tie says the best two rank equal.
func pickCandidate(cands []Candidate, start time.Time) (*Candidate, bool) {
	if len(cands) == 0 {
		return nil, false
	}
	for i := range cands {
		if cands[i].Tagged {
			return &cands[i], false
		}
	}
	// Providers round their clocks (Twilio to the second): compare at
	// that precision, so a copy created in the second the attempt started
	// counts as created after it.
	from := start.Truncate(time.Second)
	type ranked struct {
		before bool // created before the attempt started
		dist   time.Duration
	}
	rank := func(c Candidate) ranked {
		d := c.CreatedAt.Sub(from)
		if d >= 0 {
			return ranked{dist: d}
		}
		return ranked{before: true, dist: -d}
	}
	order := slices.Clone(cands)
	slices.SortStableFunc(order, func(a, b Candidate) int {
		ra, rb := rank(a), rank(b)
		if ra.before != rb.before {
			if ra.before {
				return 1
			}
			return -1
		}
		return cmp.Compare(ra.dist, rb.dist)
	})
	if len(order) > 1 && rank(order[0]) == rank(order[1]) {
		return nil, true
	}
	return &order[0], false
}

// Why a message is held for an operator (message.held's "cause").
const (
	// heldCopiesAlike: the provider holds copies that cannot be told apart.
	heldCopiesAlike = "copies_alike"
	// heldLookupIncomplete: the provider holds more records in the window
	// than a look-up reads (FindSent's ErrLookupIncomplete).
	heldLookupIncomplete = "lookup_incomplete"
)

// holdForOperator settles an attempt whose copy could not be decided —
// copies that cannot be told apart, or records that could not all be read —
// as held, announces it (message.held, with the cause) and ends the job as a
// dead letter of class reconcile_undecided: an operator looks at the
// provider's copies. Nothing is resent and nothing is adopted.
func (w *SendWorker) holdForOperator(ctx context.Context, job *river.Job[jobs.SMSSendArgs], prov Provider, att db.MessageAttempt, cause string, candidates int) error {
	err := w.fenced(ctx, job, func(tx pgx.Tx) error {
		if _, err := w.q.AttemptSettle(ctx, tx, db.AttemptSettleParams{ID: att.ID, Outcome: ptr("held")}); err != nil {
			return fmt.Errorf("error recording held attempt: %w", err)
		}
		return emitEvent(ctx, w.q, tx, "message.held", job.Args.MessageID, map[string]any{
			"message_id": job.Args.MessageID, "attempt_id": att.ID, "provider": prov.Name(), "candidates": candidates,
			"reason": OutcomeReconcileUndecided, "cause": cause,
		})
	})
	if err != nil {
		return err
	}
	w.logger.WarnContext(ctx, "held a message for an operator: its provider's copy could not be decided",
		slog.Int64("message_id", job.Args.MessageID), slog.Int64("attempt_id", att.ID), slog.String("vendor", prov.Name()),
		slog.String("cause", cause), slog.Int("candidates", candidates))
	_ = river.MetadataSet(ctx, "outcome_class", OutcomeReconcileUndecided)
	why := fmt.Sprintf("%s has %d copies that may be its attempt %d's and cannot be told apart", prov.Name(), candidates, att.ID)
	if cause == heldLookupIncomplete {
		why = fmt.Sprintf("%s holds more records since its attempt %d than a look-up reads", prov.Name(), att.ID)
	}
	return river.JobCancel(fmt.Errorf("message %d held: %s; an operator must decide", job.Args.MessageID, why))
}

// OutcomeReconcileUndecided is the dead-letter class (and message.held
// reason) of a message held because its provider's copies could not be
// told apart.
const OutcomeReconcileUndecided = "reconcile_undecided"

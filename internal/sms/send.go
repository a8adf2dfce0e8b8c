package sms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/jobs"
)

// SendWorker works sms_send jobs. It is safe for concurrent use.
type SendWorker struct {
	river.WorkerDefaults[jobs.SMSSendArgs]

	cfg       Config
	pool      *pgxpool.Pool
	providers []Provider
	logger    *slog.Logger
	q         *db.Queries
	claims    *group[claimReq, claim]
	accepts   *group[acceptReq, error]
}

// errDone ends Work after a transaction that already completed the job.
var errDone = errors.New("done")

// Work sends one message. See the package documentation for the outcomes.
func (w *SendWorker) Work(ctx context.Context, job *river.Job[jobs.SMSSendArgs]) error {
	handled, slotted, err := w.workShared(ctx, job)
	if handled {
		return err
	}
	return w.work(ctx, job, 0, nil, slotted)
}

// workShared is the common case in shared transactions: the first provider
// is ready, the message is queued and nothing stands in its way. It claims
// the message together with other jobs' (one commit, before any request
// leaves), sends it, and records the provider's id together with other
// jobs' results; Work returns only after that committed, and River then
// completes the job. A job whose completion is lost runs again and finds
// the provider id (prepare), so the provider is never called twice; a lost
// result batch leaves the attempt unresolved, which the next run reconciles
// with the provider before sending — as after a crash. handled is false
// when nothing was written and the per-job path must decide; slotted then
// says that the first provider's rate-limit slot is already taken.
func (w *SendWorker) workShared(ctx context.Context, job *river.Job[jobs.SMSSendArgs]) (handled, slotted bool, err error) {
	if len(w.providers) == 0 {
		return false, false, nil
	}
	prov := w.providers[0]
	if prov.ready(ctx) != nil {
		return false, false, nil
	}
	// The slot is taken before the claim, so a claimed message is never
	// undone for the rate limit; a message the claim passes over keeps it
	// for the per-job path (which may still not send: expired, opted out,
	// quiet hours).
	if wait, err := w.slot(ctx, job, prov); err != nil || wait > 0 {
		if err != nil {
			return true, false, err
		}
		return true, false, resilience.HoldFor(ctx, resilience.HoldRateSlot, prov.Name(), wait)
	}
	c, err := w.claims.do(ctx, claimReq{messageID: job.Args.MessageID, run: runOf(job), provider: prov.Name()})
	if err != nil {
		if ctx.Err() != nil {
			// The claim may yet commit: the next run finds its attempt.
			return true, true, fmt.Errorf("error claiming message: %w", err)
		}
		w.logger.WarnContext(ctx, "shared claim failed; deciding alone", slog.Int64("message_id", job.Args.MessageID), slog.Any("error", err))
		return false, true, nil
	}
	if !c.ok {
		return false, true, nil
	}
	se, err := w.sendOn(ctx, job, 0, c.att, c.plan, true)
	if se != nil && err == nil {
		return true, true, w.work(ctx, job, 1, se, false)
	}
	return true, true, err
}

// sendOn sends p's message through provider i on its recorded attempt att
// and settles the result: the one send-and-failover step of both paths.
// shared records an acceptance in the shared result transaction. It returns
// the provider's failure with a nil error when the message may be tried on
// the next provider (the attempt was settled as not accepted); otherwise
// what Work returns.
func (w *SendWorker) sendOn(ctx context.Context, job *river.Job[jobs.SMSSendArgs], i int, att db.MessageAttempt, p plan, shared bool) (*SendError, error) {
	prov := w.providers[i]
	var acc Accepted
	sendErr := prov.call(ctx, false, func(ctx context.Context) error {
		var err error
		acc, err = prov.Sender.Send(ctx, w.outbound(p.out, prov))
		return err
	})
	if sendErr == nil {
		if !shared {
			return nil, w.accepted(ctx, job, prov, att, acc, p)
		}
		lost, err := w.accepts.do(ctx, acceptReq{attemptID: att.ID, messageID: job.Args.MessageID, run: runOf(job), provider: prov.Name(), acc: acc, plan: p})
		if err != nil {
			return nil, fmt.Errorf("error recording provider id: %w", err)
		}
		return nil, lost
	}
	// Failover happens only when a provider provably did not accept the
	// message and the failure is the provider's, never the recipient's
	// (that would be final everywhere).
	se := AsSendError(prov.Name(), sendErr)
	if failoverAllowed(se.Class) && i < len(w.providers)-1 {
		if err := w.notAccepted(ctx, job, att, se); err != nil {
			return nil, err
		}
		w.logger.InfoContext(ctx, "failing over to the next provider",
			slog.Int64("message_id", job.Args.MessageID), slog.String("vendor", prov.Name()), slog.String("class", string(se.Class)))
		return se, nil
	}
	return nil, w.failed(ctx, job, att, se)
}

// work is the per-job path: decide alone, reconcile if needed, then try
// the providers from index from on. last is the failure of a provider
// already tried in this run; slotted says provider from's rate-limit slot
// was taken in this run already.
func (w *SendWorker) work(ctx context.Context, job *river.Job[jobs.SMSSendArgs], from int, last *SendError, slotted bool) error {
	p, err := w.prepare(ctx, job)
	if errors.Is(err, errDone) {
		return nil
	}
	if err != nil {
		return err
	}
	if p.unresolved != nil {
		ended, err := w.reconcile(ctx, job, p)
		if err != nil || ended {
			return err
		}
		// The provider provably has no copy. If its request failed on its
		// side (ambiguous: 5xx, timeout), the provider is failing: the
		// next attempt goes to the next provider, never to both.
		if next := w.after(p.unresolved); next != from {
			from, slotted = next, false
		}
	}

	// Try the providers in order (sendOn says when the next may be tried).
	for i := from; i < len(w.providers); i++ {
		prov := w.providers[i]
		if err := prov.ready(ctx); err != nil {
			last = AsSendError(prov.Name(), err)
			continue
		}
		// workShared may have taken this provider's slot before its claim
		// passed the message over.
		if !slotted || i != from {
			if wait, err := w.slot(ctx, job, prov); err != nil || wait > 0 {
				if err != nil {
					return err
				}
				return resilience.HoldFor(ctx, resilience.HoldRateSlot, prov.Name(), wait)
			}
		}
		att, bp, err := w.begin(ctx, job, prov)
		if errors.Is(err, errDone) {
			return nil
		}
		if err != nil {
			return err
		}
		p = bp
		se, err := w.sendOn(ctx, job, i, att, p, false)
		if se == nil || err != nil {
			return err
		}
		last = se
	}
	if last == nil {
		_ = river.MetadataSet(ctx, "outcome_class", "permanent")
		return river.JobCancel(errors.New("no SMS provider is configured"))
	}
	// Every provider refused before or without accepting.
	return w.outcome(ctx, job, last)
}

// outbound is m as sent through prov: with prov's status callback URL.
func (w *SendWorker) outbound(m Outbound, prov Provider) Outbound {
	if w.cfg.PublicBaseURL != "" {
		m.StatusCallbackURL = strings.TrimRight(w.cfg.PublicBaseURL, "/") + "/webhooks/" + prov.Name() + "/status?m=" + strconv.FormatInt(m.MessageID, 10)
	}
	return m
}

func (w *SendWorker) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, w.pool, fn)
}

func ptr[T any](v T) *T { return &v }

func nilIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

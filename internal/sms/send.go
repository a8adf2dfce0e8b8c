package sms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/jobs"
)

// Config is the messaging domain's configuration.
type Config struct {
	// PublicBaseURL is where providers reach the api: status callbacks go to
	// PublicBaseURL + /webhooks/twilio/status?m=<message id>.
	PublicBaseURL string `env:"PUBLIC_BASE_URL"`
	// InFlightGrace is how long an attempt without an outcome is presumed to
	// still be in flight in another process (at least the provider request
	// timeout). A younger one makes the job wait instead of reconciling.
	InFlightGrace time.Duration `env:"SMS_INFLIGHT_GRACE, default=30s"`
	// SendTimeout bounds one sms_send job.
	SendTimeout time.Duration `env:"SMS_SEND_TIMEOUT, default=60s"`
	// UnavailableLimit is set from job_kinds by NewSendWorker.
	UnavailableLimit time.Duration
}

// SendWorker works sms_send jobs. It is safe for concurrent use.
type SendWorker struct {
	river.WorkerDefaults[jobs.SMSSendArgs]

	cfg    Config
	pool   *pgxpool.Pool
	sender Sender
	dest   *resilience.Destination
	probe  func(context.Context) error
	limits Admitter
	logger *slog.Logger
	q      *db.Queries
}

// Admitter applies a distributed rate limit: it returns 0 when a send may
// go now, or how long to wait for the next slot.
type Admitter interface {
	Admit(ctx context.Context) (time.Duration, error)
}

// SendDeps are what a SendWorker calls: the provider, its destination's
// resilience policies, and an optional rate limit (nil: none).
type SendDeps struct {
	Sender      Sender
	Destination *resilience.Destination
	Limits      Admitter
	// UnavailableLimit is how long a message may wait for an unavailable
	// provider (breaker open, paused) before it becomes a dead letter of
	// class unavailable (job_kinds.unavailable_limit).
	UnavailableLimit time.Duration
	// Probe is a cheap idempotent call (a read) to the provider. While the
	// breaker is not closed, the trial call that decides whether the
	// provider is back is a probe, never a send: a send into a still-broken
	// provider would spend the message's attempt on an ambiguous failure.
	Probe func(context.Context) error
}

// NewSendWorker returns a worker that sends through deps.Sender, guarded
// by deps.Destination.
func NewSendWorker(cfg Config, pool *pgxpool.Pool, deps SendDeps, logger *slog.Logger) *SendWorker {
	if cfg.InFlightGrace <= 0 {
		cfg.InFlightGrace = 30 * time.Second
	}
	if deps.UnavailableLimit > 0 {
		cfg.UnavailableLimit = deps.UnavailableLimit
	}
	return &SendWorker{cfg: cfg, pool: pool, sender: deps.Sender, dest: deps.Destination, probe: deps.Probe, limits: deps.Limits, logger: logger, q: db.New()}
}

// Outcome tells the resilience layer whether a send or lookup error means
// the provider is failing: only failures that may be an outage count
// (ambiguous and retryable ones); answers about the request do not.
func Outcome(err error) resilience.Outcome {
	var se *SendError
	if errors.As(err, &se) && se.Class != ClassAmbiguous && se.Class != ClassRetryable {
		return resilience.Healthy
	}
	return resilience.Failing
}

// call runs fn through the provider's resilience policies, when configured.
func (w *SendWorker) call(ctx context.Context, idempotent bool, fn func(context.Context) error) error {
	if w.dest == nil {
		return fn(ctx)
	}
	err := w.dest.Call(ctx, idempotent, fn)
	var ue *resilience.UnavailableError
	if errors.As(err, &ue) {
		return &SendError{Provider: w.sender.Provider(), Class: ClassUnavailable, RetryAfter: ue.RetryAfter, Err: ue}
	}
	return err
}

// ready reports, before anything is recorded, whether the provider can be
// called now; an unavailable one snoozes the job.
func (w *SendWorker) ready(ctx context.Context, job *river.Job[jobs.SMSSendArgs]) error {
	if w.dest == nil {
		return nil
	}
	if err := w.dest.Ready(); err != nil {
		return resilience.Snooze(ctx, job.JobRow, err, w.cfg.UnavailableLimit)
	}
	if w.probe == nil || w.dest.BreakerState() == "closed" {
		return nil
	}
	// Half-open (or about to be): the trial call is a probe.
	err := w.dest.Call(ctx, true, w.probe)
	var ue *resilience.UnavailableError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ue):
		return resilience.Snooze(ctx, job.JobRow, ue, w.cfg.UnavailableLimit)
	case Outcome(err) == resilience.Failing:
		// Still down: the breaker reopened. Wait like any unavailable call.
		return resilience.Snooze(ctx, job.JobRow, &resilience.UnavailableError{
			Destination: w.dest.Name(), Reason: resilience.ReasonBreakerOpen, RetryAfter: w.dest.Settings().BreakerOpenFor,
		}, w.cfg.UnavailableLimit)
	default:
		return nil
	}
}

// Timeout bounds one run of the job.
func (w *SendWorker) Timeout(*river.Job[jobs.SMSSendArgs]) time.Duration {
	if w.cfg.SendTimeout > 0 {
		return w.cfg.SendTimeout
	}
	return time.Minute
}

// NextRetry spaces retries for SMS: quick at first (a blip), then minutes,
// capped at 30 minutes so ten attempts span about three hours — after that a
// reminder is stale and an operator should look at the dead letter.
func (w *SendWorker) NextRetry(job *river.Job[jobs.SMSSendArgs]) time.Time {
	return time.Now().Add(smsBackoff(len(job.Errors) + 1))
}

func smsBackoff(attempt int) time.Duration {
	steps := []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 20 * time.Minute}
	if attempt-1 < len(steps) {
		return steps[max(attempt-1, 0)]
	}
	return 30 * time.Minute
}

// errDone ends Work after a transaction that already completed the job.
var errDone = errors.New("done")

// plan is what prepare decided.
type plan struct {
	out        Outbound
	unresolved *db.MessageAttempt // ask the provider about it before sending
	expired    bool               // not_after has passed
	optedOut   bool               // the recipient opted out
}

// Work sends one message. See the package documentation for the outcomes.
func (w *SendWorker) Work(ctx context.Context, job *river.Job[jobs.SMSSendArgs]) error {
	log := w.logger.With(slog.Int64("job_id", job.ID), slog.Int64("message_id", job.Args.MessageID))

	p, err := w.prepare(ctx, job)
	if errors.Is(err, errDone) {
		return nil
	}
	if err != nil {
		return err
	}
	out := p.out
	if err := w.ready(ctx, job); err != nil {
		return err
	}

	if p.unresolved != nil {
		var found *Accepted
		err := w.call(ctx, true, func(ctx context.Context) error {
			var err error
			found, err = w.sender.FindSent(ctx, out, p.unresolved.StartedAt)
			return err
		})
		if err != nil {
			return w.reconcileFailed(ctx, job, err)
		}
		if found != nil {
			log.InfoContext(ctx, "adopted message the provider had accepted", slog.String("vendor", w.sender.Provider()))
			return w.adopt(ctx, job, found)
		}
		// The provider never accepted it: send now, unless the message has
		// since expired or its recipient opted out.
		ended := false
		if err := w.tx(ctx, func(tx pgx.Tx) error {
			if err := w.q.AttemptResolveAll(ctx, tx, db.AttemptResolveAllParams{MessageID: out.MessageID, Outcome: ptr("reconciled_absent")}); err != nil {
				return fmt.Errorf("error recording reconciliation: %w", err)
			}
			status, reason := StatusExpired, ReasonExpired
			switch {
			case p.expired:
			case p.optedOut:
				status, reason = StatusBlockedOptedOut, ReasonOptedOut
			default:
				return nil
			}
			ended = true
			if err := w.finish(ctx, tx, out.MessageID, status, nil, reason); err != nil {
				return err
			}
			return w.complete(ctx, tx, job)
		}); err != nil || ended {
			return err
		}
	}

	if w.limits != nil {
		wait, err := w.limits.Admit(ctx)
		if err != nil {
			return fmt.Errorf("error applying rate limit: %w", err)
		}
		if wait > 0 {
			return river.JobSnooze(wait)
		}
	}

	attempt, err := w.begin(ctx, job)
	if err != nil {
		return err
	}
	var acc Accepted
	sendErr := w.call(ctx, false, func(ctx context.Context) error {
		var err error
		acc, err = w.sender.Send(ctx, out)
		return err
	})
	if sendErr == nil {
		return w.accepted(ctx, job, attempt, acc)
	}
	return w.failed(ctx, job, attempt, AsSendError(w.sender.Provider(), sendErr))
}

// prepare locks the message and decides whether it is to be sent. It returns
// errDone when the job has been completed (message final, already accepted,
// cancelled, expired or opted out), and the newest unresolved attempt when
// the provider must be asked before anything is sent.
func (w *SendWorker) prepare(ctx context.Context, job *river.Job[jobs.SMSSendArgs]) (plan, error) {
	var (
		p      plan
		result error
	)
	err := w.tx(ctx, func(tx pgx.Tx) error {
		msg, err := w.q.MessageGetForUpdate(ctx, tx, job.Args.MessageID)
		if errors.Is(err, pgx.ErrNoRows) {
			_ = river.MetadataSet(ctx, "outcome_class", "permanent")
			result = river.JobCancel(fmt.Errorf("message %d does not exist", job.Args.MessageID))
			return nil
		}
		if err != nil {
			return fmt.Errorf("error loading message: %w", err)
		}
		// A re-run never calls the provider for a message it already has.
		if msg.ProviderMessageID != nil || isFinal(msg.Status) {
			result = errDone
			return w.complete(ctx, tx, job)
		}
		now := time.Now()
		p.expired = msg.NotAfter != nil && !now.Before(*msg.NotAfter)
		if p.expired && msg.Status == "queued" {
			if err := w.finish(ctx, tx, msg.ID, StatusExpired, nil, ReasonExpired); err != nil {
				return err
			}
			result = errDone
			return w.complete(ctx, tx, job)
		}
		if msg.NotBefore != nil && now.Before(*msg.NotBefore) {
			result = river.JobSnooze(msg.NotBefore.Sub(now))
			return nil
		}
		consent, err := w.q.ConsentGet(ctx, tx, msg.ToE164)
		p.optedOut = err == nil && consent.OptedOut
		if p.optedOut && msg.Status == "queued" {
			if err := w.finish(ctx, tx, msg.ID, StatusBlockedOptedOut, nil, ReasonOptedOut); err != nil {
				return err
			}
			result = errDone
			return w.complete(ctx, tx, job)
		} else if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("error loading consent: %w", err)
		}
		if msg.Body == nil {
			_ = river.MetadataSet(ctx, "outcome_class", "permanent")
			result = river.JobCancel(fmt.Errorf("message %d has no body (erased by retention)", msg.ID))
			return nil
		}

		att, err := w.q.AttemptLatestUnresolved(ctx, tx, msg.ID)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("error loading attempts: %w", err)
		case att.Outcome == nil && now.Sub(att.StartedAt) < w.cfg.InFlightGrace:
			// Another process may be waiting for the provider right now:
			// asking it too early would miss the message and send it twice.
			result = river.JobSnooze(w.cfg.InFlightGrace - now.Sub(att.StartedAt) + time.Second)
			return nil
		default:
			p.unresolved = &att
		}
		p.out = Outbound{
			MessageID:         msg.ID,
			To:                msg.ToE164,
			Body:              *msg.Body,
			StatusCallbackURL: w.callbackURL(msg.ID),
		}
		if msg.NotAfter != nil {
			p.out.ValidityPeriod = time.Until(*msg.NotAfter)
		}
		return nil
	})
	if err != nil {
		return p, err
	}
	return p, result
}

func (w *SendWorker) callbackURL(id int64) string {
	if w.cfg.PublicBaseURL == "" {
		return ""
	}
	return strings.TrimRight(w.cfg.PublicBaseURL, "/") + "/webhooks/" + w.sender.Provider() + "/status?m=" + strconv.FormatInt(id, 10)
}

// begin marks the message sending and records the attempt, committed before
// the request leaves.
func (w *SendWorker) begin(ctx context.Context, job *river.Job[jobs.SMSSendArgs]) (db.MessageAttempt, error) {
	var att db.MessageAttempt
	err := w.tx(ctx, func(tx pgx.Tx) error {
		if err := w.q.MessageMarkSending(ctx, tx, db.MessageMarkSendingParams{ID: job.Args.MessageID, Provider: ptr(w.sender.Provider())}); err != nil {
			return fmt.Errorf("error marking message sending: %w", err)
		}
		var err error
		att, err = w.q.AttemptStart(ctx, tx, db.AttemptStartParams{
			MessageID:  job.Args.MessageID,
			Provider:   w.sender.Provider(),
			JobID:      &job.ID,
			JobAttempt: ptr(int32(job.Attempt)),
		})
		if err != nil {
			return fmt.Errorf("error recording attempt: %w", err)
		}
		return nil
	})
	return att, err
}

// accepted records the provider's id and completes the job in one
// transaction. If that commit fails the job runs again, finds the attempt
// unresolved and adopts the message from the provider instead of resending.
func (w *SendWorker) accepted(ctx context.Context, job *river.Job[jobs.SMSSendArgs], att db.MessageAttempt, acc Accepted) error {
	return w.tx(ctx, func(tx pgx.Tx) error {
		if err := w.q.AttemptFinish(ctx, tx, db.AttemptFinishParams{ID: att.ID, Outcome: ptr("accepted"), ProviderMessageID: &acc.ProviderMessageID}); err != nil {
			return fmt.Errorf("error recording attempt: %w", err)
		}
		if err := w.q.MessageAccept(ctx, tx, acceptParams(job.Args.MessageID, w.sender.Provider(), acc)); err != nil {
			return fmt.Errorf("error recording provider id: %w", err)
		}
		return w.complete(ctx, tx, job)
	})
}

func (w *SendWorker) adopt(ctx context.Context, job *river.Job[jobs.SMSSendArgs], acc *Accepted) error {
	return w.tx(ctx, func(tx pgx.Tx) error {
		if err := w.q.AttemptResolveAll(ctx, tx, db.AttemptResolveAllParams{
			MessageID: job.Args.MessageID, Outcome: ptr("reconciled_found"), ProviderMessageID: &acc.ProviderMessageID,
		}); err != nil {
			return fmt.Errorf("error recording reconciliation: %w", err)
		}
		if err := w.q.MessageAccept(ctx, tx, acceptParams(job.Args.MessageID, w.sender.Provider(), *acc)); err != nil {
			return fmt.Errorf("error recording provider id: %w", err)
		}
		return w.complete(ctx, tx, job)
	})
}

func acceptParams(id int64, provider string, acc Accepted) db.MessageAcceptParams {
	p := db.MessageAcceptParams{ID: id, Provider: &provider, ProviderMessageID: &acc.ProviderMessageID}
	if acc.Segments > 0 {
		p.Segments = ptr(int32(acc.Segments))
	}
	return p
}

// failed decides the outcome of a failed send, in one place, by class.
func (w *SendWorker) failed(ctx context.Context, job *river.Job[jobs.SMSSendArgs], att db.MessageAttempt, se *SendError) error {
	finish := db.AttemptFinishParams{ID: att.ID, ErrorCode: nilIfEmpty(se.Code)}
	if se.HTTPStatus != 0 {
		finish.HttpStatus = ptr(int32(se.HTTPStatus))
	}
	var result error
	err := w.tx(ctx, func(tx pgx.Tx) error {
		switch se.Class {
		case ClassRecipient:
			finish.Outcome = ptr("recipient_rejected")
			status := StatusFailed
			if se.Reason == ReasonOptedOut {
				status = StatusBlockedOptedOut
				if err := w.optOut(ctx, tx, job.Args.MessageID, se.Provider+"_error_"+se.Code); err != nil {
					return err
				}
			}
			if err := w.q.AttemptFinish(ctx, tx, finish); err != nil {
				return fmt.Errorf("error recording attempt: %w", err)
			}
			if err := w.finish(ctx, tx, job.Args.MessageID, status, nilIfEmpty(se.Code), se.Reason); err != nil {
				return err
			}
			return w.complete(ctx, tx, job)
		case ClassAmbiguous:
			// Keep the message sending: the next run asks the provider first.
			finish.Outcome = ptr("ambiguous")
			result = fmt.Errorf("error sending sms: %w", se)
		case ClassThrottled:
			finish.Outcome = ptr("throttled")
			result = river.JobSnooze(max(se.RetryAfter, time.Second))
		case ClassUnavailable:
			finish.Outcome = ptr("not_sent")
			result = resilience.Snooze(ctx, job.JobRow, se.Err, w.cfg.UnavailableLimit)
		case ClassRetryable:
			finish.Outcome = ptr("not_sent")
			result = fmt.Errorf("error sending sms: %w", se)
		default: // ClassPermanent and anything unknown: an operator must act.
			finish.Outcome = ptr("permanent")
			_ = river.MetadataSet(ctx, "outcome_class", string(ClassPermanent))
			result = river.JobCancel(fmt.Errorf("error sending sms: %w", se))
		}
		if err := w.q.AttemptFinish(ctx, tx, finish); err != nil {
			return fmt.Errorf("error recording attempt: %w", err)
		}
		if se.Class != ClassAmbiguous {
			if err := w.q.MessageRequeue(ctx, tx, job.Args.MessageID); err != nil {
				return fmt.Errorf("error requeueing message: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return result
}

// reconcileFailed handles a failed FindSent: nothing was sent, so a
// throttle snoozes and anything else retries later.
func (w *SendWorker) reconcileFailed(ctx context.Context, job *river.Job[jobs.SMSSendArgs], err error) error {
	se := AsSendError(w.sender.Provider(), err)
	switch se.Class {
	case ClassThrottled:
		return river.JobSnooze(max(se.RetryAfter, time.Second))
	case ClassUnavailable:
		return resilience.Snooze(ctx, job.JobRow, se.Err, w.cfg.UnavailableLimit)
	}
	return fmt.Errorf("error reconciling sms with provider: %w", se)
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

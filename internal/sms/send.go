package sms

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nyaruka/phonenumbers"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/jobs"
)

// Config is the messaging domain's configuration.
type Config struct {
	// PublicBaseURL is where providers reach the api: status callbacks go to
	// PublicBaseURL + /webhooks/<provider>/status?m=<message id>.
	PublicBaseURL string `env:"PUBLIC_BASE_URL"`
	// InFlightGrace is how long an attempt without a known outcome (none
	// yet, or ambiguous) is presumed to still be in flight — in another
	// process, or queued at the provider's edge. A younger one makes the job
	// wait instead of reconciling. At least SendTimeout.
	InFlightGrace time.Duration `env:"SMS_INFLIGHT_GRACE, default=30s"`
	// SendTimeout bounds one sms_send job. InFlightGrace is raised to it
	// (with a warning) when configured shorter.
	SendTimeout time.Duration `env:"SMS_SEND_TIMEOUT, default=30s"`
	// QuietHours ("21:00-08:00", local to the message's time_zone) holds app
	// messages until the window ends; empty disables.
	QuietHours QuietHours `env:"SMS_QUIET_HOURS"`
	// BatchSize is how many concurrently running sms_send jobs may share
	// one transaction to claim their messages, and one to record what the
	// provider accepted (default 256). 1 gives every job transactions of
	// its own.
	BatchSize int `env:"SMS_BATCH_SIZE, default=256"`
	// UnavailableLimit is job_kinds.unavailable_limit of sms_send, set by
	// NewSendWorker.
	UnavailableLimit time.Duration
}

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

// SendDeps are what a SendWorker calls.
type SendDeps struct {
	// Providers in order of preference (SMS_PROVIDERS).
	Providers []Provider
	// UnavailableLimit is how long a message may wait for unavailable
	// providers (breaker open, paused) before it becomes a dead letter of
	// class unavailable (job_kinds.unavailable_limit).
	UnavailableLimit time.Duration
}

// NewSendWorker returns a worker that sends through deps.Providers.
func NewSendWorker(cfg Config, pool *pgxpool.Pool, deps SendDeps, logger *slog.Logger) *SendWorker {
	if cfg.InFlightGrace <= 0 {
		cfg.InFlightGrace = 30 * time.Second
	}
	if cfg.SendTimeout > 0 && cfg.InFlightGrace < cfg.SendTimeout {
		// A run may hold its request for up to the send timeout: a grace
		// shorter than that would look up a message still on its way.
		logger.Warn("SMS_INFLIGHT_GRACE is shorter than SMS_SEND_TIMEOUT; using SMS_SEND_TIMEOUT",
			slog.Duration("configured", cfg.InFlightGrace), slog.Duration("using", cfg.SendTimeout))
		cfg.InFlightGrace = cfg.SendTimeout
	}
	if deps.UnavailableLimit > 0 {
		cfg.UnavailableLimit = deps.UnavailableLimit
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	w := &SendWorker{cfg: cfg, pool: pool, providers: deps.Providers, logger: logger, q: db.New()}
	w.claims = newGroup(cfg.BatchSize, w.claimBatch)
	w.claims.observe = observeBatches("claim")
	w.accepts = newGroup(cfg.BatchSize, w.acceptBatch)
	// Results are off the path to the provider: one lane makes the largest
	// batches (measured: 7% more throughput than two; claims keep two, so
	// that a lone message is claimed at once).
	w.accepts.lanes = 1
	w.accepts.observe = observeBatches("result")
	return w
}

// Timeout bounds one run of the job.
func (w *SendWorker) Timeout(*river.Job[jobs.SMSSendArgs]) time.Duration {
	if w.cfg.SendTimeout > 0 {
		return w.cfg.SendTimeout
	}
	return time.Minute
}

// NextRetry spaces retries for SMS: quick at first, because a retry after
// an ambiguous failure reconciles before it resends (safe to do soon) and a
// provider that is down makes jobs snooze instead of spending attempts; then
// minutes, so ten attempts span about an hour — after that a reminder is
// stale and an operator should look at the dead letter.
func (w *SendWorker) NextRetry(job *river.Job[jobs.SMSSendArgs]) time.Time {
	return time.Now().Add(smsBackoff(len(job.Errors) + 1))
}

func smsBackoff(attempt int) time.Duration {
	steps := []time.Duration{5 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute,
		5 * time.Minute, 10 * time.Minute, 15 * time.Minute}
	if attempt-1 < len(steps) {
		return steps[max(attempt-1, 0)]
	}
	return 20 * time.Minute
}

// errDone ends Work after a transaction that already completed the job.
var errDone = errors.New("done")

// plan is what prepare decided.
type plan struct {
	out        Outbound
	segments   int
	encoding   string
	unresolved *db.MessageAttempt // ask its provider about it before sending
	expired    bool               // not_after has passed
	optedOut   bool               // the recipient opted out (and this is no HELP answer)
}

// metadataSlot is the job metadata key of a booked rate-limit slot.
const metadataSlot = "ratelimit_slot"

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
		return true, false, river.JobSnooze(wait)
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
	var acc Accepted
	sendErr := prov.call(ctx, false, func(ctx context.Context) error {
		var err error
		acc, err = prov.Sender.Send(ctx, w.outbound(c.plan.out, prov))
		return err
	})
	if sendErr == nil {
		lost, err := w.accepts.do(ctx, acceptReq{attemptID: c.att.ID, messageID: job.Args.MessageID, run: runOf(job), provider: prov.Name(), acc: acc, plan: c.plan})
		if err != nil {
			return true, true, fmt.Errorf("error recording provider id: %w", err)
		}
		if lost != nil {
			return true, true, lost
		}
		return true, true, nil
	}
	se := AsSendError(prov.Name(), sendErr)
	if failoverAllowed(se.Class) && len(w.providers) > 1 {
		if err := w.notAccepted(ctx, job, c.att, se); err != nil {
			return true, true, err
		}
		w.logFailover(ctx, job, prov, se)
		return true, true, w.work(ctx, job, 1, se, false)
	}
	return true, true, w.failed(ctx, job, c.att, se)
}

func (w *SendWorker) logFailover(ctx context.Context, job *river.Job[jobs.SMSSendArgs], prov Provider, se *SendError) {
	w.logger.InfoContext(ctx, "failing over to the next provider",
		slog.Int64("message_id", job.Args.MessageID), slog.String("vendor", prov.Name()), slog.String("class", string(se.Class)))
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

	// Try the providers in order. Failover happens only when a provider
	// provably did not accept the message and the failure is the
	// provider's, never the recipient's (that would be final everywhere).
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
				return river.JobSnooze(wait)
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
		var acc Accepted
		sendErr := prov.call(ctx, false, func(ctx context.Context) error {
			var err error
			acc, err = prov.Sender.Send(ctx, w.outbound(p.out, prov))
			return err
		})
		if sendErr == nil {
			return w.accepted(ctx, job, prov, att, acc, p)
		}
		se := AsSendError(prov.Name(), sendErr)
		if failoverAllowed(se.Class) && i < len(w.providers)-1 {
			if err := w.notAccepted(ctx, job, att, se); err != nil {
				return err
			}
			w.logFailover(ctx, job, prov, se)
			last = se
			continue
		}
		return w.failed(ctx, job, att, se)
	}
	if last == nil {
		_ = river.MetadataSet(ctx, "outcome_class", "permanent")
		return river.JobCancel(errors.New("no SMS provider is configured"))
	}
	return w.exhausted(ctx, job, last)
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
// deciding about them needs. Attempts are read after the lock is held, by a
// statement of their own: a job that waited for the lock must see the
// attempt the job before it committed.
func (w *SendWorker) loadForSend(ctx context.Context, tx pgx.Tx, ids []int64) (map[int64]sendState, error) {
	rows, err := w.q.MessagesForSend(ctx, tx, ids)
	if err != nil {
		return nil, fmt.Errorf("error loading messages: %w", err)
	}
	out := make(map[int64]sendState, len(rows))
	for _, r := range rows {
		out[r.Message.ID] = sendState{msg: r.Message, optedOut: r.OptedOut}
	}
	if len(rows) == 0 {
		return out, nil
	}
	atts, err := w.q.AttemptsLatestUnresolved(ctx, tx, ids)
	if err != nil {
		return nil, fmt.Errorf("error loading attempts: %w", err)
	}
	for i := range atts {
		st := out[atts[i].MessageID]
		st.unresolved = &atts[i]
		out[atts[i].MessageID] = st
	}
	return out, nil
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
	reason   string
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
		return p, verdict{decision: decideSnooze, wait: msg.NotBefore.Sub(now)}
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
				return p, verdict{decision: decideSnooze, wait: until.Sub(now)}
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
			return p, verdict{decision: decideSnooze, wait: wait}
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
	states, err := w.loadForSend(ctx, tx, []int64{job.Args.MessageID})
	if err != nil {
		return p, nil, err
	}
	st, ok := states[job.Args.MessageID]
	if !ok {
		_ = river.MetadataSet(ctx, "outcome_class", "permanent")
		return p, river.JobCancel(fmt.Errorf("message %d does not exist", job.Args.MessageID)), nil
	}
	if err := w.hold(ctx, tx, job.Args.MessageID, runOf(job)); err != nil {
		return p, nil, err
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
		return p, river.JobSnooze(v.wait), nil
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

// outbound is m as sent through prov: with prov's status callback URL.
func (w *SendWorker) outbound(m Outbound, prov Provider) Outbound {
	if w.cfg.PublicBaseURL != "" {
		m.StatusCallbackURL = strings.TrimRight(w.cfg.PublicBaseURL, "/") + "/webhooks/" + prov.Name() + "/status?m=" + strconv.FormatInt(m.MessageID, 10)
	}
	return m
}

// slot applies prov's rate limit: it returns 0 when the message may go now
// (a slot booked earlier and now due, or a free one), or how long to snooze
// for the slot it just booked.
func (w *SendWorker) slot(ctx context.Context, job *river.Job[jobs.SMSSendArgs], prov Provider) (time.Duration, error) {
	if prov.Slots == nil {
		return 0, nil
	}
	var meta map[string]any
	if json.Unmarshal(job.Metadata, &meta) == nil {
		if s, ok := meta[metadataSlot].(string); ok {
			if at, err := time.Parse(time.RFC3339Nano, s); err == nil && time.Since(at) > -time.Second && time.Since(at) < time.Minute {
				_ = river.MetadataSet(ctx, metadataSlot, nil) // used up
				return 0, nil
			}
		}
	}
	// Slots are booked at most slotHorizon ahead: River keeps a job snoozed
	// for up to 5 s available with its exact time, so it wakes on time
	// (within a fetch poll); longer snoozes go through the scheduler, whose
	// coarser rounds would wake many booked jobs together.
	wait, booked, err := prov.Slots.Reserve(ctx, slotHorizon)
	if err != nil {
		return 0, fmt.Errorf("error applying rate limit: %w", err)
	}
	if wait <= 0 {
		return 0, nil
	}
	if booked {
		_ = river.MetadataSet(ctx, metadataSlot, time.Now().Add(wait).UTC().Format(time.RFC3339Nano))
		return wait, nil
	}
	// The queue for this sender is longer than the horizon: come back when
	// the free slots are near, spread so the backlog does not return at once.
	return wait - slotHorizon/2 + time.Duration(rand.Int64N(int64(slotHorizon))), nil
}

// slotHorizon is how far ahead a rate-limit slot may be booked.
const slotHorizon = 4 * time.Second

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
	for i, r := range reqs {
		ids[i] = r.messageID
	}
	err := w.tx(ctx, func(tx pgx.Tx) error {
		states, err := w.loadForSend(ctx, tx, ids)
		if err != nil {
			return err
		}
		runs := make([]run, len(reqs))
		for i, r := range reqs {
			runs[i] = r.run
		}
		holds, err := w.holding(ctx, tx, ids, runs)
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
		atts, err := w.claimRows(ctx, tx, claimed)
		if err != nil {
			return err
		}
		for j, r := range claimed {
			out[index[r.messageID]] = claim{ok: true, plan: plans[j], att: atts[r.messageID]}
		}
		return nil
	})
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
	start := db.AttemptsStartParams{}
	for _, r := range reqs {
		start.MessageIds = append(start.MessageIds, r.messageID)
		start.Providers = append(start.Providers, r.provider)
		start.JobIds = append(start.JobIds, r.run.jobID)
		start.JobAttempts = append(start.JobAttempts, int32(r.run.attempt))
	}
	atts, err := w.q.AttemptsStart(ctx, tx, start)
	if err != nil {
		return nil, fmt.Errorf("error recording attempts: %w", err)
	}
	out := make(map[int64]db.MessageAttempt, len(atts))
	for _, a := range atts {
		out[a.MessageID] = a
	}
	if len(out) != len(reqs) {
		return nil, fmt.Errorf("error recording attempts: %d rows for %d messages", len(out), len(reqs))
	}
	return out, nil
}

// acceptReq is an attempt its provider accepted.
type acceptReq struct {
	attemptID, messageID int64 // attemptID 0: adopted, attempts settled apart
	run                  run   // the run that sent it
	provider             string
	acc                  Accepted
	plan                 plan // the segments and encoding computed before sending
}

// acceptBatch records, in one transaction, what the providers accepted.
// A request whose run lost its message gets errLostRun.
func (w *SendWorker) acceptBatch(ctx context.Context, reqs []acceptReq) ([]error, error) {
	var lost map[int64]bool
	err := w.tx(ctx, func(tx pgx.Tx) error {
		var err error
		lost, err = w.acceptRows(ctx, tx, reqs)
		return err
	})
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

// acceptRows locks the messages of reqs, and records the acceptances of
// those their runs still hold; it returns the others (nothing written).
func (w *SendWorker) acceptRows(ctx context.Context, tx pgx.Tx, reqs []acceptReq) (map[int64]bool, error) {
	// Messages in id order, as every writer of several messages takes them.
	reqs = slices.SortedFunc(slices.Values(reqs), func(a, b acceptReq) int { return cmp.Compare(a.messageID, b.messageID) })
	ids := make([]int64, len(reqs))
	runs := make([]run, len(reqs))
	for i, r := range reqs {
		ids[i], runs[i] = r.messageID, r.run
	}
	if err := w.q.MessagesLock(ctx, tx, ids); err != nil {
		return nil, fmt.Errorf("error locking messages: %w", err)
	}
	holds, err := w.holding(ctx, tx, ids, runs)
	if err != nil {
		return nil, err
	}
	lost := map[int64]bool{}
	kept := reqs[:0:0]
	for _, r := range reqs {
		if !holds[held{r.messageID, r.run}] {
			lost[r.messageID] = true
			w.logger.WarnContext(ctx, "a send result arrived after its run lost the message; not applied (the next run reconciles)",
				slog.Int64("message_id", r.messageID), slog.Int64("attempt_id", r.attemptID), slog.String("vendor", r.provider))
			continue
		}
		kept = append(kept, r)
	}
	return lost, w.acceptMessages(ctx, tx, kept)
}

// acceptMessages records acceptances on the attempts and messages, which
// tx has locked for runs that hold them.
func (w *SendWorker) acceptMessages(ctx context.Context, tx pgx.Tx, reqs []acceptReq) error {
	atts := db.AttemptsAcceptParams{}
	for _, r := range reqs {
		if r.attemptID != 0 {
			atts.Ids = append(atts.Ids, r.attemptID)
			atts.ProviderMessageIds = append(atts.ProviderMessageIds, r.acc.ProviderMessageID)
		}
	}
	took := map[int64]bool{}
	if len(atts.Ids) > 0 {
		ids, err := w.q.AttemptsAccept(ctx, tx, atts)
		if err != nil {
			return fmt.Errorf("error recording attempts: %w", err)
		}
		for _, id := range ids {
			took[id] = true
		}
	}
	msgs := db.MessagesAcceptParams{}
	for _, r := range reqs {
		if r.attemptID != 0 && !took[r.attemptID] {
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
	if len(msgs.Ids) == 0 {
		return nil
	}
	if err := w.q.MessagesAccept(ctx, tx, msgs); err != nil {
		return fmt.Errorf("error recording provider ids: %w", err)
	}
	return nil
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
		if err := w.acceptMessages(ctx, tx, []acceptReq{{messageID: job.Args.MessageID, provider: prov.Name(), acc: *acc, plan: p}}); err != nil {
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

// failed decides the outcome of a failed send with no failover left, in
// one place, by class.
func (w *SendWorker) failed(ctx context.Context, job *river.Job[jobs.SMSSendArgs], att db.MessageAttempt, se *SendError) error {
	var (
		result  error
		outcome string
	)
	err := w.fenced(ctx, job, func(tx pgx.Tx) error {
		switch se.Class {
		case ClassRecipient:
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
			return w.complete(ctx, tx, job)
		case ClassAmbiguous:
			// The attempt stays unresolved: the next run asks the provider
			// first.
			outcome = "ambiguous"
			result = fmt.Errorf("error sending sms: %w", se)
		case ClassThrottled:
			outcome = "throttled"
			result = river.JobSnooze(max(se.RetryAfter, time.Second))
		case ClassUnavailable:
			outcome = "not_sent"
			result = resilience.Snooze(ctx, job.JobRow, se.Err, w.cfg.UnavailableLimit)
		case ClassRetryable:
			outcome = "not_sent"
			result = fmt.Errorf("error sending sms: %w", se)
		default: // ClassPermanent and anything unknown: an operator must act.
			outcome = "permanent"
			_ = river.MetadataSet(ctx, "outcome_class", string(ClassPermanent))
			result = river.JobCancel(fmt.Errorf("error sending sms: %w", se))
		}
		if err := w.q.AttemptFinish(ctx, tx, finishParams(att, se, outcome)); err != nil {
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

// exhausted ends a run in which every provider refused before or without
// accepting: wait for an unavailable one, else back off or dead-letter by
// the last failure.
func (w *SendWorker) exhausted(ctx context.Context, job *river.Job[jobs.SMSSendArgs], last *SendError) error {
	switch last.Class {
	case ClassUnavailable:
		return resilience.Snooze(ctx, job.JobRow, last.Err, w.cfg.UnavailableLimit)
	case ClassPermanent:
		_ = river.MetadataSet(ctx, "outcome_class", string(ClassPermanent))
		return river.JobCancel(fmt.Errorf("error sending sms on every provider: %w", last))
	default:
		return fmt.Errorf("error sending sms on every provider: %w", last)
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

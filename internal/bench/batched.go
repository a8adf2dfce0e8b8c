package bench

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nyaruka/phonenumbers"
	"github.com/riverqueue/river"
	"github.com/sethvargo/go-envconfig"

	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/internal/sms"
	"github.com/switchboard-health/switchboard/internal/twilio"
	"github.com/switchboard-health/switchboard/internal/worker"
	"github.com/switchboard-health/switchboard/jobs"
)

// This file is a prototype, measured by the e2e scenario, of a batched
// result path for sms_send. It is not used by Switchboard: it shows what
// batching the bookkeeping would be worth before anyone changes
// internal/sms.
//
// The production worker runs three transactions per message (decide, record
// the attempt, record the provider id and complete the job), each a few
// statements, and River's JobCompleteTx is one large statement per job,
// planned on every call.
// The prototype keeps the same rows, the same order and the same
// guarantees, but lets concurrently running jobs share transactions:
//
//  1. claim: for every message of the batch, lock it, check that it is on
//     the plain path (queued, no unresolved attempt, no opt-out, not
//     expired, no quiet-hours zone, a valid number), mark it sending and
//     insert its attempt row; one commit, before any request leaves;
//  2. the provider call, per job, through the same resilience destination;
//  3. accept: the attempts' outcomes and the provider ids of the batch in
//     one transaction; Work returns only after it committed, and River's
//     own completer (itself batched) completes the jobs after that, so
//     every result is durable before its job completes. A job whose
//     completion is lost runs again, finds its provider id and ends
//     without a call (the production worker's first check).
//
// A job that is not on the plain path, or whose batch fails before the
// call, is handed to the production sms.SendWorker. A failed send or a lost
// accept batch returns an error: the re-run finds the attempt unresolved
// and the production worker reconciles with the provider before anything is
// sent again — the same path as a crash between the call and the commit.
//
// Batches form on their own: each batch loop takes whatever requests
// queued while the previous transaction ran, so an idle system sends
// batches of one and a busy one shares each commit among many jobs.

// batcher runs requests in shared transactions.
type batcher[Req, Res any] struct {
	in  chan batchCall[Req, Res]
	run func(ctx context.Context, reqs []Req) ([]Res, error)
}

type batchCall[Req, Res any] struct {
	req   Req
	reply chan batchResult[Res]
}

type batchResult[Res any] struct {
	res Res
	err error
}

func newBatcher[Req, Res any](run func(context.Context, []Req) ([]Res, error)) *batcher[Req, Res] {
	return &batcher[Req, Res]{in: make(chan batchCall[Req, Res], 4096), run: run}
}

// loop serves batches of at most maxBatch until ctx ends.
func (b *batcher[Req, Res]) loop(ctx context.Context, maxBatch int) {
	for {
		var first batchCall[Req, Res]
		select {
		case <-ctx.Done():
			return
		case first = <-b.in:
		}
		calls := []batchCall[Req, Res]{first}
	more:
		for len(calls) < maxBatch {
			select {
			case c := <-b.in:
				calls = append(calls, c)
			default:
				break more
			}
		}
		reqs := make([]Req, len(calls))
		for i, c := range calls {
			reqs[i] = c.req
		}
		res, err := b.run(ctx, reqs)
		for i, c := range calls {
			r := batchResult[Res]{err: err}
			if err == nil {
				r.res = res[i]
			}
			c.reply <- r
		}
	}
}

func (b *batcher[Req, Res]) do(ctx context.Context, req Req) (Res, error) {
	reply := make(chan batchResult[Res], 1)
	select {
	case b.in <- batchCall[Req, Res]{req: req, reply: reply}:
	case <-ctx.Done():
		var zero Res
		return zero, ctx.Err()
	}
	select {
	case r := <-reply:
		return r.res, r.err
	case <-ctx.Done():
		var zero Res
		return zero, ctx.Err()
	}
}

type claimReq struct {
	messageID, jobID int64
	attempt          int
}

type claimRes struct {
	plain     bool
	attemptID int64
	out       sms.Outbound
}

type acceptReq struct {
	attemptID, messageID, jobID int64
	acc                         sms.Accepted
}

// batchedSend is the prototype's sms_send worker.
type batchedSend struct {
	river.WorkerDefaults[jobs.SMSSendArgs]
	fallback *sms.SendWorker
	sender   sms.Sender
	dest     *resilience.Destination
	claims   *batcher[claimReq, claimRes]
	accepts  *batcher[acceptReq, struct{}]
}

func (w *batchedSend) Timeout(job *river.Job[jobs.SMSSendArgs]) time.Duration {
	return w.fallback.Timeout(job)
}

func (w *batchedSend) NextRetry(job *river.Job[jobs.SMSSendArgs]) time.Time {
	return w.fallback.NextRetry(job)
}

func (w *batchedSend) Work(ctx context.Context, job *river.Job[jobs.SMSSendArgs]) error {
	if w.dest.Ready() != nil {
		return w.fallback.Work(ctx, job)
	}
	c, err := w.claims.do(ctx, claimReq{messageID: job.Args.MessageID, jobID: job.ID, attempt: job.Attempt})
	if err != nil || !c.plain {
		// Nothing was written for this job: the production path decides.
		return w.fallback.Work(ctx, job)
	}
	var acc sms.Accepted
	err = w.dest.Call(ctx, false, func(ctx context.Context) error {
		var err error
		acc, err = w.sender.Send(ctx, c.out)
		return err
	})
	if err != nil {
		// The attempt stays unresolved: the re-run reconciles first.
		return fmt.Errorf("error sending sms: %w", err)
	}
	_, err = w.accepts.do(ctx, acceptReq{attemptID: c.attemptID, messageID: job.Args.MessageID, jobID: job.ID, acc: acc})
	if err != nil {
		return fmt.Errorf("error recording provider id: %w", err)
	}
	return nil
}

func claimBatch(pool *pgxpool.Pool, provider, callback string) func(context.Context, []claimReq) ([]claimRes, error) {
	return func(ctx context.Context, reqs []claimReq) ([]claimRes, error) {
		ids := make([]int64, len(reqs))
		for i, r := range reqs {
			ids[i] = r.messageID
		}
		out := make([]claimRes, len(reqs))
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `
				SELECT m.id, m.to_e164, m.body,
				       m.status = 'queued' AND m.provider_message_id IS NULL AND m.body IS NOT NULL
				       AND m.purpose = 'app' AND m.time_zone IS NULL
				       AND (m.not_before IS NULL OR m.not_before <= now())
				       AND (m.not_after IS NULL OR m.not_after > now() + interval '1 minute')
				       AND NOT EXISTS (SELECT FROM switchboard.sms_consent c WHERE c.phone_e164 = m.to_e164 AND c.opted_out)
				       AND NOT EXISTS (SELECT FROM switchboard.message_attempts a
				                       WHERE a.message_id = m.id AND (a.outcome IS NULL OR a.outcome = 'ambiguous'))
				FROM switchboard.messages m WHERE m.id = ANY($1) ORDER BY m.id FOR UPDATE`, ids)
			if err != nil {
				return err
			}
			type msg struct {
				to, body string
				plain    bool
			}
			found := map[int64]msg{}
			var (
				id       int64
				to       string
				body     *string
				plain    bool
				segs     []int32
				encs     []string
				plainIDs []int64
			)
			if _, err := pgx.ForEachRow(rows, []any{&id, &to, &body, &plain}, func() error {
				m := msg{to: to, plain: plain && body != nil}
				if m.plain {
					m.body = *body
					num, err := phonenumbers.Parse(to, "")
					m.plain = err == nil && phonenumbers.IsValidNumber(num)
				}
				found[id] = m
				return nil
			}); err != nil {
				return err
			}
			var attemptMsg, attemptJob []int64
			var attemptN []int32
			seen := map[int64]bool{}
			for i, r := range reqs {
				m, ok := found[r.messageID]
				if !ok || !m.plain || seen[r.messageID] {
					continue
				}
				seen[r.messageID] = true
				n, enc := sms.Segments(m.body)
				plainIDs = append(plainIDs, r.messageID)
				segs = append(segs, int32(n))
				encs = append(encs, enc)
				attemptMsg = append(attemptMsg, r.messageID)
				attemptJob = append(attemptJob, r.jobID)
				attemptN = append(attemptN, int32(r.attempt))
				out[i] = claimRes{plain: true, out: sms.Outbound{
					MessageID: r.messageID, To: m.to, Body: m.body,
					StatusCallbackURL: callback + "/webhooks/" + provider + "/status?m=" + strconv.FormatInt(r.messageID, 10),
				}}
			}
			if len(plainIDs) == 0 {
				return nil
			}
			if _, err := tx.Exec(ctx, `UPDATE switchboard.messages m
				SET status = 'sending', provider = $4, segments = s.seg, encoding = s.enc, updated_at = now()
				FROM unnest($1::bigint[], $2::int[], $3::text[]) s(id, seg, enc) WHERE m.id = s.id`,
				plainIDs, segs, encs, provider); err != nil {
				return err
			}
			rows, err = tx.Query(ctx, `INSERT INTO switchboard.message_attempts (message_id, provider, job_id, job_attempt)
				SELECT s.m, $4, s.j, s.n FROM unnest($1::bigint[], $2::bigint[], $3::int[]) s(m, j, n)
				RETURNING message_id, id`, attemptMsg, attemptJob, attemptN, provider)
			if err != nil {
				return err
			}
			attempts := map[int64]int64{}
			var mid, aid int64
			if _, err := pgx.ForEachRow(rows, []any{&mid, &aid}, func() error { attempts[mid] = aid; return nil }); err != nil {
				return err
			}
			for i := range out {
				if out[i].plain {
					out[i].attemptID = attempts[reqs[i].messageID]
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		return out, nil
	}
}

func acceptBatch(pool *pgxpool.Pool, provider string) func(context.Context, []acceptReq) ([]struct{}, error) {
	return func(ctx context.Context, reqs []acceptReq) ([]struct{}, error) {
		// Rows in id order, as every writer of messages takes them.
		reqs = slices.Clone(reqs)
		slices.SortFunc(reqs, func(a, b acceptReq) int { return cmp.Compare(a.messageID, b.messageID) })
		var (
			attempts, msgs []int64
			pids           []string
			segs           []*int32
		)
		for _, r := range reqs {
			attempts = append(attempts, r.attemptID)
			msgs = append(msgs, r.messageID)
			pids = append(pids, r.acc.ProviderMessageID)
			var s *int32
			if r.acc.Segments > 0 {
				n := int32(r.acc.Segments)
				s = &n
			}
			segs = append(segs, s)
		}
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			b := &pgx.Batch{}
			b.Queue(`UPDATE switchboard.message_attempts a SET outcome = 'accepted', finished_at = now(), provider_message_id = s.pid
				FROM unnest($1::bigint[], $2::text[]) s(id, pid) WHERE a.id = s.id`, attempts, pids)
			b.Queue(`UPDATE switchboard.messages m
				SET provider = $4, provider_message_id = s.pid, segments = coalesce(s.seg, m.segments),
				    status = CASE WHEN m.status IN ('queued', 'sending') THEN 'sending' ELSE m.status END,
				    accepted_at = now(), updated_at = now()
				FROM unnest($1::bigint[], $2::text[], $3::int[]) s(id, pid, seg) WHERE m.id = s.id`, msgs, pids, segs, provider)
			return tx.SendBatch(ctx, b).Close()
		})
		if err != nil {
			return nil, err
		}
		return make([]struct{}, len(reqs)), nil
	}
}

// startBatched starts a River client with the same settings as the sms
// worker, working sms_send with the prototype (and the production worker as
// its fallback), sending through p.
func startBatched(ctx context.Context, e *env, p *provider, workers int, poll time.Duration) (*running, error) {
	wcfg := e.workerSettings("sms", workers, poll)
	pool, err := e.pool(ctx, wcfg.DBMaxConns, nil)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*running, error) { pool.Close(); return nil, err }
	tc := p.twilio()
	tw, err := twilio.New(twilio.Config{
		AccountSID: tc.AccountSID, AuthToken: tc.AuthToken, FromNumber: tc.FromNumber, APIBaseURL: tc.APIBaseURL,
		RequestTimeout: 10 * time.Second, ValidityPeriod: time.Hour,
	}, worker.NewTransport(wcfg))
	if err != nil {
		return fail(err)
	}
	settings, err := resilience.LoadSettingsFrom(ctx, twilio.Provider, envconfig.MapLookuper(map[string]string{
		resilience.EnvPrefix(twilio.Provider) + "MAX_CONCURRENT": strconv.Itoa(workers),
	}))
	if err != nil {
		return fail(err)
	}
	registry := resilience.New(resilience.DBStore{Pool: pool})
	dest := registry.Register(twilio.Provider, settings, sms.Outcome)
	fallback := sms.NewSendWorker(sms.Config{PublicBaseURL: callbackBase}, pool, sms.SendDeps{
		Providers:        []sms.Provider{{Sender: tw, Destination: dest, Probe: tw.Probe}},
		UnavailableLimit: 2 * time.Hour,
	}, e.logger)
	bw := &batchedSend{
		fallback: fallback, sender: tw, dest: dest,
		claims:  newBatcher(claimBatch(pool, twilio.Provider, callbackBase)),
		accepts: newBatcher(acceptBatch(pool, twilio.Provider)),
	}
	ws := river.NewWorkers()
	if err := river.AddWorkerSafely(ws, bw); err != nil {
		return fail(err)
	}
	client, err := worker.NewClient(wcfg, pool, ws, nil, e.logger)
	if err != nil {
		return fail(err)
	}
	return start(ctx, client, pool, func(ctx context.Context) {
		done := make(chan struct{})
		// Two loops per phase: one batch commits while the next forms.
		for range 2 {
			go func() { bw.claims.loop(ctx, 256); done <- struct{}{} }()
			go func() { bw.accepts.loop(ctx, 256); done <- struct{}{} }()
		}
		registry.Run(ctx, 2*time.Second, e.logger)
		for range 4 {
			<-done
		}
	})
}

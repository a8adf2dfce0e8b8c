package sms_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	twiliosandbox "github.com/switchboard-health/switchboard/internal/sandbox/twilio"
	"github.com/switchboard-health/switchboard/internal/sms"
	"github.com/switchboard-health/switchboard/internal/twilio"
	"github.com/switchboard-health/switchboard/internal/worker"
	"github.com/switchboard-health/switchboard/jobs"
)

// direct calls a send worker's Work itself, without a River client, on
// jobs the test marks running as River's fetch would: a test decides which
// runs exist and when.
type direct struct {
	pool    *pgxpool.Pool
	sandbox *twiliosandbox.Server
	twilio  *twilio.Client
	worker  *sms.SendWorker
	client  *river.Client[pgx.Tx]
	ctx     context.Context // a Work context: River's client (not started) in it
}

// start starts the River client: it works the available jobs from now on.
func (d *direct) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	require.NoError(t, d.client.Start(ctx))
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.client.StopAndCancel(c)
	})
}

// newDirect starts a Twilio sandbox behind wrap (nil: none) and a send
// worker with cfg sending to it.
func newDirect(t *testing.T, cfg sms.Config, wrap func(http.Handler) http.Handler) *direct {
	t.Helper()
	pool, _ := dbtest.NewPool(t)
	logger := slog.New(slog.DiscardHandler)
	box := twiliosandbox.New(twiliosandbox.Config{AccountSID: testSID, AuthToken: testToken}, logger)
	var h http.Handler = box
	if wrap != nil {
		h = wrap(box)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	tw, err := twilio.New(twilio.Config{AccountSID: testSID, AuthToken: testToken, FromNumber: testFrom,
		APIBaseURL: srv.URL, RequestTimeout: 10 * time.Second}, nil)
	require.NoError(t, err)
	if cfg.PublicBaseURL == "" {
		cfg.PublicBaseURL = "https://switchboard.example.com"
	}
	w := sms.NewSendWorker(cfg, pool, sms.SendDeps{Providers: []sms.Provider{{Sender: tw}}}, logger)
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	client, err := worker.NewClient(worker.Config{Queues: "sms=2", FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond},
		pool, workers, nil, logger)
	require.NoError(t, err)
	return &direct{pool: pool, sandbox: box, twilio: tw, worker: w, client: client, ctx: rivertest.WorkContext(context.Background(), client)}
}

// message enqueues a message (its job stays available: no client runs).
func (d *direct) message(t *testing.T, key, body string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, pgx.BeginFunc(context.Background(), d.pool, func(tx pgx.Tx) error {
		var err error
		id, err = jobs.SendSMS(context.Background(), tx, jobs.SendSMSParams{IdempotencyKey: key, To: testTo, Body: body})
		return err
	}))
	return id
}

// fetch marks message id's job running with the given attempt, as River's
// fetch does, and returns it as Work receives it.
func (d *direct) fetch(t *testing.T, id int64, attempt int) *river.Job[jobs.SMSSendArgs] {
	t.Helper()
	row := &rivertype.JobRow{}
	require.NoError(t, d.pool.QueryRow(context.Background(), `
		UPDATE switchboard.river_job j SET state = 'running', attempt = $2, attempted_at = now()
		FROM switchboard.messages m WHERE m.id = $1 AND j.id = m.job_id
		RETURNING j.id, j.attempt, j.metadata`, id, attempt).Scan(&row.ID, &row.Attempt, &row.Metadata))
	row.State = rivertype.JobStateRunning
	return &river.Job[jobs.SMSSendArgs]{JobRow: row, Args: jobs.SMSSendArgs{MessageID: id}}
}

// ambiguousAttempt records an attempt on Twilio whose answer was lost,
// started ago.
func (d *direct) ambiguousAttempt(t *testing.T, id int64, ago time.Duration) int64 {
	t.Helper()
	return d.ambiguousAttemptAt(t, id, time.Now().Add(-ago))
}

// ambiguousAttemptAt records an attempt on Twilio started at, whose answer
// was lost.
func (d *direct) ambiguousAttemptAt(t *testing.T, id int64, at time.Time) int64 {
	t.Helper()
	var att int64
	require.NoError(t, d.pool.QueryRow(context.Background(), `
		INSERT INTO switchboard.message_attempts (message_id, provider, started_at, finished_at, outcome, http_status)
		VALUES ($1, 'twilio', $2, $2, 'ambiguous', 500) RETURNING id`, id, at).Scan(&att))
	return att
}

// sendCopy hands message id to the sandbox as the worker would (status
// callback with ?m=), as if the answer had then been lost, and returns the
// copy as the sandbox stored it.
func (d *direct) sendCopy(t *testing.T, id int64, body string) twiliosandbox.Message {
	t.Helper()
	acc, err := d.twilio.Send(context.Background(), sms.Outbound{MessageID: id, To: testTo, Body: body,
		StatusCallbackURL: fmt.Sprintf("https://switchboard.example.com/webhooks/twilio/status?m=%d", id)})
	require.NoError(t, err)
	for _, m := range d.sandbox.Messages() {
		if m.SID == acc.ProviderMessageID {
			return m
		}
	}
	t.Fatalf("sandbox has no message %s", acc.ProviderMessageID)
	return twiliosandbox.Message{}
}

// sid is message id's provider id, or "".
func (d *direct) sid(t *testing.T, id int64) string {
	t.Helper()
	var sid *string
	require.NoError(t, d.pool.QueryRow(context.Background(), "SELECT provider_message_id FROM switchboard.messages WHERE id = $1", id).Scan(&sid))
	if sid == nil {
		return ""
	}
	return *sid
}

func (d *direct) outcomes(t *testing.T, id int64) []string {
	t.Helper()
	rows, err := d.pool.Query(context.Background(), "SELECT coalesce(outcome, 'open') FROM switchboard.message_attempts WHERE message_id = $1 ORDER BY id", id)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

func (d *direct) copies(body string) int {
	n := 0
	for _, m := range d.sandbox.Messages() {
		if m.Body == body {
			n++
		}
	}
	return n
}

// listBarrier holds every list request until n have arrived (or a few
// seconds passed), so n look-ups are surely in flight together.
func listBarrier(n int) func(http.Handler) http.Handler {
	var (
		mu      sync.Mutex
		arrived int
		all     = make(chan struct{})
	)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet {
				mu.Lock()
				arrived++
				if arrived == n {
					close(all)
				}
				mu.Unlock()
				select {
				case <-all:
				case <-time.After(5 * time.Second):
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Two live runs of one job (River's rescuer re-queued a job that is still
// running, say) both reconcile an old ambiguous attempt and find no copy.
// The message is sent once: the attempt insert re-locks and re-decides, and
// sees the other run's attempt.
func TestConcurrentRunsOfOneJobSendOnce(t *testing.T) {
	t.Parallel()
	d := newDirect(t, sms.Config{InFlightGrace: time.Minute, BatchSize: 1}, listBarrier(2))
	id := d.message(t, "concurrent-runs", testBody)
	d.ambiguousAttempt(t, id, time.Hour)
	job := d.fetch(t, id, 1)

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() { errs[i] = d.worker.Work(d.ctx, job) })
	}
	wg.Wait()
	require.Equal(t, 2, d.sandbox.ListCalls(), "both runs looked the message up")
	require.Equal(t, 1, d.copies(testBody), "one copy, whichever run sent it (errors %v)", errs)
	require.Equal(t, 1, d.sandbox.CreateCalls())
}

// A run whose job River has moved on from (a later attempt is running)
// writes nothing and sends nothing.
func TestRunThatLostItsJobSendsNothing(t *testing.T) {
	t.Parallel()
	d := newDirect(t, sms.Config{InFlightGrace: time.Minute}, nil)
	id := d.message(t, "lost-run", testBody)
	stale := d.fetch(t, id, 1)
	d.fetch(t, id, 2) // rescued and fetched again

	err := d.worker.Work(d.ctx, stale)
	require.Error(t, err)
	var snooze *river.JobSnoozeError
	require.False(t, errors.As(err, &snooze))
	require.Zero(t, d.sandbox.CreateCalls())
	var n int
	require.NoError(t, d.pool.QueryRow(context.Background(), "SELECT count(*) FROM switchboard.message_attempts WHERE message_id = $1", id).Scan(&n))
	require.Zero(t, n, "no attempt recorded by a run that lost the job")

	// The run that holds the job sends it.
	require.NoError(t, d.worker.Work(d.ctx, d.fetch(t, id, 3)))
	require.Equal(t, 1, d.copies(testBody))
}

// Two different messages with the same body to the same number ("Reply
// YES") were each sent once, and both answers were lost. Each reconciles to
// its own copy — the one created closest after its attempt started, never
// one another message adopted — so neither is lost and neither is resent.
func TestSameBodyMessagesReconcileToTheirOwnCopies(t *testing.T) {
	t.Parallel()
	d := newDirect(t, sms.Config{InFlightGrace: time.Millisecond}, nil)
	const body = "Reply YES to confirm your visit."
	first, second := d.message(t, "same-body-1", body), d.message(t, "same-body-2", body)

	c1 := d.sendCopy(t, first, body)
	for !time.Now().After(c1.CreatedAt.Add(time.Second)) { // Twilio dates are whole seconds
		time.Sleep(50 * time.Millisecond)
	}
	c2 := d.sendCopy(t, second, body)
	require.True(t, c2.CreatedAt.After(c1.CreatedAt))
	d.ambiguousAttemptAt(t, first, c1.CreatedAt)
	d.ambiguousAttemptAt(t, second, c2.CreatedAt)

	// The later message reconciles first: the newest copy is its own.
	require.NoError(t, d.worker.Work(d.ctx, d.fetch(t, second, 1)))
	// The earlier one: the newest copy is taken; its own is closest.
	require.NoError(t, d.worker.Work(d.ctx, d.fetch(t, first, 1)))

	require.Equal(t, c1.SID, d.sid(t, first), "the first message has its own copy")
	require.Equal(t, c2.SID, d.sid(t, second), "the second message has its own copy")
	require.Equal(t, []string{"reconciled_found"}, d.outcomes(t, first))
	require.Equal(t, []string{"reconciled_found"}, d.outcomes(t, second))
	require.Equal(t, 2, d.sandbox.CreateCalls(), "nothing was resent")
}

// Two same-body messages whose copies Twilio created in the same second,
// with nothing to tell them apart (Twilio does not echo the callback URL):
// both are held for an operator — attempt outcome held, event message.held,
// dead letter of class reconcile_undecided — never resent, never adopted.
func TestIndistinguishableCopiesAreHeldForAnOperator(t *testing.T) {
	t.Parallel()
	d := newDirect(t, sms.Config{InFlightGrace: time.Millisecond}, nil)
	twins, _ := holdTwins(t, d) // held, nothing resent
	creates := d.sandbox.CreateCalls()

	ctx := context.Background()
	for _, id := range twins {
		require.Empty(t, d.sid(t, id), "nothing adopted")
		var class string
		require.NoError(t, d.pool.QueryRow(ctx, `SELECT class FROM switchboard.dead_letters
			WHERE job_id = (SELECT job_id FROM switchboard.messages WHERE id = $1)`, id).Scan(&class))
		require.Equal(t, sms.OutcomeReconcileUndecided, class)
		var held int
		require.NoError(t, d.pool.QueryRow(ctx, "SELECT count(*) FROM switchboard.events WHERE kind = 'message.held' AND subject = $1",
			fmt.Sprintf("message/%d", id)).Scan(&held))
		require.Equal(t, 1, held)
		var cancelled bool
		require.NoError(t, d.pool.QueryRow(ctx, "SELECT switchboard.cancel_sms($1)", id).Scan(&cancelled))
		require.False(t, cancelled, "a held message may have been sent: cancel_sms refuses it")
	}
	require.Equal(t, creates, d.sandbox.CreateCalls(), "nothing was resent")
}

// An attempt whose answer was lost (a timeout, a 5xx) may still be queued
// at the provider's edge: inside the in-flight grace the run neither looks
// it up nor resends; it waits until the grace ends.
func TestAmbiguousAttemptInsideTheGraceWaits(t *testing.T) {
	t.Parallel()
	const grace = time.Hour
	d := newDirect(t, sms.Config{InFlightGrace: grace}, nil)
	id := d.message(t, "inside-grace", testBody)
	d.ambiguousAttempt(t, id, time.Second)

	err := d.worker.Work(d.ctx, d.fetch(t, id, 1))
	var snooze *river.JobSnoozeError
	require.ErrorAs(t, err, &snooze)
	require.Greater(t, snooze.Duration, grace-time.Minute, "waits until the grace ends")
	require.LessOrEqual(t, snooze.Duration, grace, "never longer than one grace")
	require.Zero(t, d.sandbox.ListCalls(), "no look-up inside the grace")
	require.Zero(t, d.sandbox.CreateCalls(), "no resend")
	require.Equal(t, []string{"ambiguous"}, d.outcomes(t, id))
}

// The request of an ambiguous attempt reaches the provider late (it sat at
// the provider's edge). The run inside the grace waits; the run after it
// looks the message up, finds the late copy and adopts it: one copy.
func TestAmbiguousSendIsLookedUpWhenTheGraceEnds(t *testing.T) {
	t.Parallel()
	const grace = time.Hour
	d := newDirect(t, sms.Config{InFlightGrace: grace}, nil)
	id := d.message(t, "grace-ends", testBody)
	att := d.ambiguousAttempt(t, id, time.Second)

	err := d.worker.Work(d.ctx, d.fetch(t, id, 1))
	var snooze *river.JobSnoozeError
	require.ErrorAs(t, err, &snooze, "inside the grace the run waits")

	late := d.sendCopy(t, id, testBody) // the request queued at the edge is accepted now
	_, err = d.pool.Exec(context.Background(), "UPDATE switchboard.message_attempts SET started_at = now() - interval '61 minutes' WHERE id = $1", att)
	require.NoError(t, err) // the grace has ended

	require.NoError(t, d.worker.Work(d.ctx, d.fetch(t, id, 1)))
	require.Equal(t, late.SID, d.sid(t, id), "the late copy is adopted")
	require.Equal(t, []string{"reconciled_found"}, d.outcomes(t, id))
	require.Equal(t, 1, d.copies(testBody), "one copy")
	require.Equal(t, 1, d.sandbox.ListCalls(), "one look-up, after the grace")
}

// A recipient with more messages since the attempt than a look-up reads
// (a shared number, a test line): the copy may be among those not read, so
// the look-up proves nothing. The message is held for an operator — never
// resent on an absence that was not proven (the old look-up read three
// pages, answered "absent" and sent a second copy).
func TestLookupThatCannotReadEverythingHoldsTheMessage(t *testing.T) {
	t.Parallel()
	d := newDirect(t, sms.Config{InFlightGrace: time.Millisecond}, nil)
	id := d.message(t, "busy-recipient", testBody)
	d.ambiguousAttempt(t, id, time.Second)
	for i := range 1001 { // more than Twilio's look-up reads (10 pages of 100)
		_, err := d.twilio.Send(context.Background(), sms.Outbound{To: testTo, Body: fmt.Sprintf("another message %d", i)})
		require.NoError(t, err)
	}
	creates := d.sandbox.CreateCalls()

	err := d.worker.Work(d.ctx, d.fetch(t, id, 1))
	var cancel *river.JobCancelError
	require.ErrorAs(t, err, &cancel, "held for an operator")
	require.NotContains(t, err.Error(), testTo)
	require.Equal(t, creates, d.sandbox.CreateCalls(), "nothing resent")
	require.Equal(t, []string{"held"}, d.outcomes(t, id))
	require.Empty(t, d.sid(t, id), "nothing adopted")
	var cause string
	require.NoError(t, d.pool.QueryRow(context.Background(), `SELECT data->>'cause' FROM switchboard.events
		WHERE kind = 'message.held' AND subject = $1`, fmt.Sprintf("message/%d", id)).Scan(&cause))
	require.Equal(t, "lookup_incomplete", cause)
}

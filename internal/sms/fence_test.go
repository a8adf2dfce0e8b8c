package sms_test

import (
	"context"
	"errors"
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
	ctx     context.Context // a Work context: River's client (not started) in it
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
	client, err := worker.NewClient(worker.Config{Queues: "sms=1"}, pool, workers, nil, logger)
	require.NoError(t, err)
	return &direct{pool: pool, sandbox: box, twilio: tw, worker: w, ctx: rivertest.WorkContext(context.Background(), client)}
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
	var att int64
	require.NoError(t, d.pool.QueryRow(context.Background(), `
		INSERT INTO switchboard.message_attempts (message_id, provider, started_at, finished_at, outcome, http_status)
		VALUES ($1, 'twilio', now() - $2::interval, now() - $2::interval, 'ambiguous', 500) RETURNING id`,
		id, ago.String()).Scan(&att))
	return att
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

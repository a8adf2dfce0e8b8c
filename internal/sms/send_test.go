package sms_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	twiliosandbox "github.com/switchboard-health/switchboard/internal/sandbox/twilio"
	"github.com/switchboard-health/switchboard/internal/sms"
	"github.com/switchboard-health/switchboard/internal/twilio"
	"github.com/switchboard-health/switchboard/internal/worker"
	"github.com/switchboard-health/switchboard/jobs"
)

const (
	testSID   = "ACtest"
	testToken = "authtoken"
	testFrom  = "+15005550006"
	testTo    = "+14155550123"
	testBody  = "Your appointment is tomorrow at 9:00."
)

type testBundle struct {
	pool    *pgxpool.Pool
	sandbox *twiliosandbox.Server
	twilio  *twilio.Client
	client  *river.Client[pgx.Tx]
}

// startClient starts a River client working queues with workers on pool,
// with the fetch settings every test here uses, and stops it (cancelling
// running jobs) at cleanup.
func startClient(t *testing.T, ctx context.Context, pool *pgxpool.Pool, workers *river.Workers, queues string, logger *slog.Logger, hooks ...rivertype.Hook) *river.Client[pgx.Tx] {
	t.Helper()
	client, err := worker.NewClient(worker.Config{Queues: queues, FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond},
		pool, workers, nil, logger, hooks...)
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.StopAndCancel(c)
	})
	return client
}

// setup runs the real send worker in a River client against a fresh
// database, sending through twilio-go to the sandbox Twilio.
func setup(t *testing.T, publicBaseURL string) *testBundle {
	t.Helper()
	pool, _ := dbtest.NewPool(t)
	logger := phiFreeLogger(t)
	sandbox := twiliosandbox.New(twiliosandbox.Config{AccountSID: testSID, AuthToken: testToken, CallbackDelay: 50 * time.Millisecond}, logger)
	srv := httptest.NewServer(sandbox)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go sandbox.Run(ctx)

	tw, err := twilio.New(twilio.Config{
		AccountSID: testSID, AuthToken: testToken, FromNumber: testFrom,
		APIBaseURL: srv.URL, RequestTimeout: 2 * time.Second, ValidityPeriod: time.Hour,
	}, nil)
	require.NoError(t, err)

	workers := river.NewWorkers()
	river.AddWorker(workers, sms.NewSendWorker(sms.Config{PublicBaseURL: publicBaseURL, InFlightGrace: 5 * time.Second}, pool, sms.SendDeps{Providers: []sms.Provider{{Sender: tw}}}, logger))
	river.AddWorker(workers, sms.NewReconcileWorker(sms.ReconcileConfig{After: 30 * time.Minute, MaxAge: 72 * time.Hour},
		pool, []sms.Provider{{Sender: tw}}, logger))
	river.AddWorker(workers, sms.NewWebhookWorker(pool, map[string]sms.ReportParser{twilio.Provider: tw}, sms.InboundConfig{HelpText: "help text", AutoReplyText: "not monitored", AutoReplyWindow: time.Hour}, logger))
	client := startClient(t, ctx, pool, workers, "sms=10,inbound=5", logger)
	return &testBundle{pool: pool, sandbox: sandbox, twilio: tw, client: client}
}

func (b *testBundle) send(t *testing.T, key string, mutate ...func(*jobs.SendSMSParams)) int64 {
	t.Helper()
	p := jobs.SendSMSParams{IdempotencyKey: key, To: testTo, Body: testBody}
	for _, m := range mutate {
		m(&p)
	}
	var id int64
	require.NoError(t, pgx.BeginFunc(context.Background(), b.pool, func(tx pgx.Tx) error {
		var err error
		id, err = jobs.SendSMS(context.Background(), tx, p)
		return err
	}))
	return id
}

type messageRow struct {
	Status     string
	SID        *string
	Reason     *string
	Code       *string
	JobState   string
	JobAttempt int
	Snoozes    *int
}

func (b *testBundle) message(t *testing.T, id int64) messageRow {
	t.Helper()
	var m messageRow
	require.NoError(t, b.pool.QueryRow(context.Background(), `
		SELECT m.status, m.provider_message_id, m.error_reason, m.error_code, j.state, j.attempt, (j.metadata->>'snoozes')::int
		FROM switchboard.messages m JOIN switchboard.river_job j ON j.id = m.job_id WHERE m.id = $1`, id).
		Scan(&m.Status, &m.SID, &m.Reason, &m.Code, &m.JobState, &m.JobAttempt, &m.Snoozes))
	return m
}

func (b *testBundle) waitJob(t *testing.T, id int64, states ...string) messageRow {
	t.Helper()
	var m messageRow
	require.Eventually(t, func() bool {
		m = b.message(t, id)
		for _, s := range states {
			if m.JobState == s {
				return true
			}
		}
		return false
	}, 60*time.Second, 20*time.Millisecond, "job of message %d never reached %v", id, states)
	return m
}

func (b *testBundle) attempts(t *testing.T, id int64) []string {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), "SELECT coalesce(outcome, 'open') FROM switchboard.message_attempts WHERE message_id = $1 ORDER BY id", id)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

func (b *testBundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func TestSendWorker(t *testing.T) {
	t.Parallel()

	t.Run("AcceptedRecordsTheSIDWithTheCompletion", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "https://switchboard.example.com")
		id := b.send(t, "ok-1")
		m := b.waitJob(t, id, "completed")
		require.Equal(t, "sending", m.Status)
		require.NotNil(t, m.SID)
		require.Equal(t, []string{"accepted"}, b.attempts(t, id))

		msgs := b.sandbox.Messages()
		require.Len(t, msgs, 1)
		require.Equal(t, *m.SID, msgs[0].SID)
		require.Equal(t, testTo, msgs[0].To)
		require.Equal(t, testFrom, msgs[0].From)
		require.Equal(t, testBody, msgs[0].Body)
		require.Equal(t, "https://switchboard.example.com/webhooks/twilio/status?m="+itoa(id), msgs[0].StatusCallback)
	})

	t.Run("InvalidNumberEndsTheMessageWithoutDeadLetter", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		b.sandbox.InjectFaults(twiliosandbox.Fault{Status: 400, Code: 21211})
		id := b.send(t, "invalid-1")
		m := b.waitJob(t, id, "completed")
		require.Equal(t, "failed", m.Status)
		require.Equal(t, sms.ReasonInvalidNumber, *m.Reason)
		require.Equal(t, "21211", *m.Code)
		require.Zero(t, b.count(t, "SELECT count(*) FROM switchboard.dead_letters"))
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM switchboard.events WHERE kind = 'message.failed' AND subject = $1", "message/"+itoa(id)))
	})

	t.Run("OptOutBlocksAndRecordsConsent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		b.sandbox.InjectFaults(twiliosandbox.Fault{Status: 400, Code: 21610})
		id := b.send(t, "stop-1")
		m := b.waitJob(t, id, "completed")
		require.Equal(t, "blocked_opted_out", m.Status)
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM switchboard.sms_consent WHERE phone_e164 = $1 AND opted_out", testTo))
		require.Zero(t, b.count(t, "SELECT count(*) FROM switchboard.dead_letters"))

		// The next message to that number never reaches Twilio.
		calls := b.sandbox.CreateCalls()
		next := b.send(t, "stop-2")
		m = b.waitJob(t, next, "completed")
		require.Equal(t, "blocked_opted_out", m.Status)
		require.Equal(t, calls, b.sandbox.CreateCalls())
	})

	t.Run("OurCredentialsRejectedIsADeadLetterWithTheCode", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		b.sandbox.InjectFaults(twiliosandbox.Fault{Status: 401, Code: 20003})
		id := b.send(t, "auth-1")
		m := b.waitJob(t, id, "cancelled")
		require.Equal(t, "queued", m.Status, "never accepted, so not sending")
		var class, subject, errText string
		require.NoError(t, b.pool.QueryRow(context.Background(),
			"SELECT class, subject, errors->-1->>'error' FROM switchboard.dead_letters WHERE job_id = (SELECT job_id FROM switchboard.messages WHERE id = $1)", id).
			Scan(&class, &subject, &errText))
		require.Equal(t, "permanent", class)
		require.Equal(t, "message/"+itoa(id), subject)
		require.Contains(t, errText, "20003")
		require.NotContains(t, errText, testTo, "no phone numbers in job errors")
		require.NotContains(t, errText, testBody)
	})

	t.Run("ThrottledSnoozesWithoutSpendingAnAttempt", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		b.sandbox.InjectFaults(twiliosandbox.Fault{Status: 429, Code: 20429, RetryAfter: "120"})
		id := b.send(t, "throttle-1")
		m := b.waitJob(t, id, "scheduled")
		require.Equal(t, "queued", m.Status)
		require.Equal(t, 1, *m.Snoozes)
		require.Equal(t, []string{"throttled"}, b.attempts(t, id))
		var wait time.Duration
		require.NoError(t, b.pool.QueryRow(context.Background(),
			"SELECT scheduled_at - now() FROM switchboard.river_job WHERE id = (SELECT job_id FROM switchboard.messages WHERE id = $1)", id).Scan(&wait))
		require.Greater(t, wait, 100*time.Second, "snoozed until Twilio's Retry-After")
		var reason, dest string
		require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT metadata->>'hold_reason', metadata->>'hold_destination'
			FROM switchboard.river_job WHERE id = (SELECT job_id FROM switchboard.messages WHERE id = $1)`, id).Scan(&reason, &dest))
		require.Equal(t, "throttled", reason, "River UI says why it waits")
		require.Equal(t, "twilio", dest)
	})

	t.Run("AmbiguousFailureIsReconciledNotResent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		// Twilio stores the message but the answer is a 500.
		b.sandbox.InjectFaults(twiliosandbox.Fault{AcceptThenFail: true})
		id := b.send(t, "ambiguous-1")
		m := b.waitJob(t, id, "completed")
		require.NotNil(t, m.SID)
		require.Equal(t, 1, b.sandbox.CreateCalls(), "never sent twice")
		require.Len(t, b.sandbox.Messages(), 1)
		require.Equal(t, b.sandbox.Messages()[0].SID, *m.SID)
		require.Equal(t, []string{"reconciled_found"}, b.attempts(t, id))
	})

	t.Run("TimeoutAfterTheRequestLeftIsReconciled", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		b.sandbox.InjectFaults(twiliosandbox.Fault{Hang: 5 * time.Second})
		id := b.send(t, "hang-1")
		m := b.waitJob(t, id, "completed")
		require.NotNil(t, m.SID)
		require.Equal(t, 1, b.sandbox.CreateCalls())
		require.Equal(t, []string{"reconciled_found"}, b.attempts(t, id))
	})

	t.Run("ConnectionDroppedWithoutAcceptanceSendsOnceMore", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		b.sandbox.InjectFaults(twiliosandbox.Fault{DropConnection: true})
		id := b.send(t, "drop-1")
		m := b.waitJob(t, id, "completed")
		require.NotNil(t, m.SID)
		require.Len(t, b.sandbox.Messages(), 1, "exactly one message reached the recipient")
		require.Equal(t, []string{"reconciled_absent", "accepted"}, b.attempts(t, id))
	})

	// A message left sending without a SID: the process died after the
	// request left and before the answer was recorded.
	crashed := func(t *testing.T, b *testBundle, key string) int64 {
		t.Helper()
		ctx := context.Background()
		var id int64
		require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			var err error
			id, err = jobs.SendSMS(ctx, tx, jobs.SendSMSParams{IdempotencyKey: key, To: testTo, Body: testBody,
				NotBefore: time.Now().Add(time.Hour)})
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE switchboard.messages SET status = 'sending', provider = 'twilio', not_before = NULL WHERE id = $1`, id); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO switchboard.message_attempts (message_id, provider, started_at) VALUES ($1, 'twilio', now() - interval '10 minutes')`, id)
			return err
		}))
		return id
	}
	runNow := func(t *testing.T, b *testBundle, id int64) {
		_, err := b.pool.Exec(context.Background(), `UPDATE switchboard.river_job SET state = 'available', scheduled_at = now()
			WHERE id = (SELECT job_id FROM switchboard.messages WHERE id = $1)`, id)
		require.NoError(t, err)
	}

	t.Run("CrashAfterSendAdoptsWhatTwilioHas", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		id := crashed(t, b, "crash-found")
		// What the dead process had sent.
		acc, err := b.twilio.Send(context.Background(), sms.Outbound{MessageID: id, To: testTo, Body: testBody})
		require.NoError(t, err)
		runNow(t, b, id)
		m := b.waitJob(t, id, "completed")
		require.Equal(t, acc.ProviderMessageID, *m.SID)
		require.Equal(t, 1, b.sandbox.CreateCalls())
		require.Positive(t, b.sandbox.ListCalls())
		require.Equal(t, []string{"reconciled_found"}, b.attempts(t, id))
	})

	t.Run("CrashBeforeTwilioAcceptedSendsOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		id := crashed(t, b, "crash-absent")
		runNow(t, b, id)
		m := b.waitJob(t, id, "completed")
		require.NotNil(t, m.SID)
		require.Equal(t, 1, b.sandbox.CreateCalls())
		require.Equal(t, []string{"reconciled_absent", "accepted"}, b.attempts(t, id))
	})

	t.Run("CancelledAndExpiredNeverReachTwilio", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		ctx := context.Background()
		later := time.Now().Add(time.Hour)
		var cancelled, expired int64
		require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			var err error
			if cancelled, err = jobs.SendSMS(ctx, tx, jobs.SendSMSParams{IdempotencyKey: "c", To: testTo, Body: testBody, NotBefore: later}); err != nil {
				return err
			}
			if ok, err := jobs.CancelSMS(ctx, tx, cancelled); err != nil || !ok {
				return fmt.Errorf("cancel: %v %w", ok, err)
			}
			expired, err = jobs.SendSMS(ctx, tx, jobs.SendSMSParams{IdempotencyKey: "e", To: testTo, Body: testBody, NotBefore: later, NotAfter: later.Add(time.Hour)})
			return err
		}))
		// Time passes: its window closes before the worker sees it.
		_, err := b.pool.Exec(ctx, "UPDATE switchboard.messages SET not_before = NULL, not_after = now() - interval '1 second' WHERE id = $1", expired)
		require.NoError(t, err)
		runNow(t, b, expired)
		m := b.waitJob(t, expired, "completed")
		require.Equal(t, "expired", m.Status)
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM switchboard.events WHERE kind = 'message.expired'"))
		require.Equal(t, "cancelled", b.message(t, cancelled).Status)
		require.Zero(t, b.sandbox.CreateCalls())
	})

	// A job that waits says why where River UI shows it (issue 14): its
	// metadata's hold_reason, next to hold_until.
	t.Run("HeldJobsSayWhyInTheirMetadata", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "")
		ctx := context.Background()
		held := func(t *testing.T, id int64, reason string) {
			t.Helper()
			require.Eventually(t, func() bool {
				var got, until *string
				var state string
				require.NoError(t, b.pool.QueryRow(ctx, `SELECT j.state, j.metadata->>'hold_reason', j.metadata->>'hold_until'
					FROM switchboard.river_job j JOIN switchboard.messages m ON m.job_id = j.id WHERE m.id = $1`, id).Scan(&state, &got, &until))
				// A short hold stays available with a future scheduled_at.
				return state != "running" && got != nil && *got == reason && until != nil
			}, 60*time.Second, 20*time.Millisecond, "message %d held for %s", id, reason)
		}

		// Woken before the send time the app gave it.
		scheduled := b.send(t, "held-scheduled", func(p *jobs.SendSMSParams) { p.NotBefore = time.Now().Add(time.Hour) })
		runNow(t, b, scheduled)
		held(t, scheduled, "scheduled")

		// An attempt that may still be in flight (its clock ran ahead, so
		// the grace cannot have passed, however slow this machine is).
		inflight := b.send(t, "held-inflight", func(p *jobs.SendSMSParams) { p.NotBefore = time.Now().Add(time.Hour) })
		_, err := b.pool.Exec(ctx, `WITH m AS (UPDATE switchboard.messages SET not_before = NULL WHERE id = $1 RETURNING id)
			INSERT INTO switchboard.message_attempts (message_id, provider, started_at) SELECT id, 'twilio', now() + interval '1 hour' FROM m`, inflight)
		require.NoError(t, err)
		runNow(t, b, inflight)
		held(t, inflight, "in_flight_grace")
		require.Zero(t, b.sandbox.CreateCalls())
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// phiFreeLogger returns a debug-level JSON logger for the workers and River
// and, when the test ends, checks that no line held a phone number or a
// message body.
func phiFreeLogger(t *testing.T) *slog.Logger {
	t.Helper()
	buf := &syncBuffer{}
	t.Cleanup(func() {
		logs := buf.String()
		require.NotEmpty(t, logs, "the workers logged through this logger")
		for _, phi := range []string{testTo, strings.TrimPrefix(testTo, "+"), testBody, "help text", "not monitored"} {
			require.NotContains(t, logs, phi, "PHI in a log line")
		}
	})
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

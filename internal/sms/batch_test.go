package sms_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	twiliosandbox "github.com/switchboard-health/switchboard/internal/sandbox/twilio"
	"github.com/switchboard-health/switchboard/internal/sms"
	"github.com/switchboard-health/switchboard/internal/twilio"
	"github.com/switchboard-health/switchboard/internal/worker"
	"github.com/switchboard-health/switchboard/jobs"
)

// numberN is a fictional number libphonenumber accepts, one per message, so
// that reconciliation tells the messages apart.
func numberN(n int) string { return fmt.Sprintf("+1201555%04d", n) }

// enqueueN commits n messages to distinct numbers in one app transaction.
func (b *testBundle) enqueueN(t *testing.T, prefix string, n int, extra func(tx pgx.Tx) error) []int64 {
	t.Helper()
	ctx := context.Background()
	ids := make([]int64, 0, n)
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		for i := range n {
			id, err := jobs.SendSMS(ctx, tx, jobs.SendSMSParams{IdempotencyKey: prefix + strconv.Itoa(i), To: numberN(i), Body: testBody})
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		if extra != nil {
			return extra(tx)
		}
		return nil
	}))
	return ids
}

// sentPerMessage counts the sandbox's accepted messages by message id (the
// status callback URL carries it).
func (b *testBundle) sentPerMessage(t *testing.T) map[int64]int {
	t.Helper()
	out := map[int64]int{}
	for _, m := range b.sandbox.Messages() {
		u, err := url.Parse(m.StatusCallback)
		require.NoError(t, err)
		id, err := strconv.ParseInt(u.Query().Get("m"), 10, 64)
		require.NoError(t, err)
		out[id]++
	}
	return out
}

func TestSharedTransactions(t *testing.T) {
	t.Parallel()
	b := setup(t, "https://switchboard.example.com")
	ctx := context.Background()
	const n = 60
	var optedOut, expired, invalid int64
	ids := b.enqueueN(t, "shared-", n, func(tx pgx.Tx) error {
		// Messages the claim passes over, in the same burst.
		var err error
		if _, err = tx.Exec(ctx, "INSERT INTO switchboard.sms_consent (phone_e164, opted_out, source) VALUES ('+12015559998', true, 'test')"); err != nil {
			return err
		}
		if optedOut, err = jobs.SendSMS(ctx, tx, jobs.SendSMSParams{IdempotencyKey: "shared-stop", To: "+12015559998", Body: testBody}); err != nil {
			return err
		}
		if invalid, err = jobs.SendSMS(ctx, tx, jobs.SendSMSParams{IdempotencyKey: "shared-invalid", To: "+10000000000", Body: testBody}); err != nil {
			return err
		}
		if expired, err = jobs.SendSMS(ctx, tx, jobs.SendSMSParams{IdempotencyKey: "shared-expired", To: "+12015559997", Body: testBody,
			NotAfter: time.Now().Add(time.Hour)}); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE switchboard.messages SET not_after = now() - interval '1 second' WHERE id = $1", expired)
		return err
	})

	for _, id := range ids {
		m := b.waitJob(t, id, "completed")
		require.Equal(t, "sending", m.Status)
		require.NotNil(t, m.SID)
		require.Equal(t, []string{"accepted"}, b.attempts(t, id), "message %d", id)
	}
	require.Equal(t, "blocked_opted_out", b.waitJob(t, optedOut, "completed").Status)
	require.Equal(t, "failed", b.waitJob(t, invalid, "completed").Status)
	require.Equal(t, "expired", b.waitJob(t, expired, "completed").Status)

	sent := b.sentPerMessage(t)
	require.Len(t, sent, n, "only the sendable messages reached Twilio")
	for _, id := range ids {
		require.Equal(t, 1, sent[id], "message %d sent exactly once", id)
	}
	require.Equal(t, n, b.sandbox.CreateCalls())

	// Jobs shared transactions: attempts claimed together have the same
	// started_at (now() of their transaction), and attempts accepted
	// together the same row version creator (xmin).
	claims := b.count(t, "SELECT count(DISTINCT started_at) FROM switchboard.message_attempts")
	accepts := b.count(t, "SELECT count(DISTINCT xmin::text) FROM switchboard.message_attempts")
	require.Less(t, claims, n, "claims shared transactions")
	require.Less(t, accepts, n, "results shared transactions")
	t.Logf("%d messages: %d claim and %d result transactions", n, claims, accepts)
}

func TestLostResultBatchIsReconciledNotResent(t *testing.T) {
	t.Parallel()
	b := setup(t, "https://switchboard.example.com")
	ctx := context.Background()
	// The first transaction recording an acceptance fails, as if the
	// database went away between the provider's answer and the commit.
	_, err := b.pool.Exec(ctx, `
		CREATE SEQUENCE public.lose_result;
		CREATE FUNCTION public.lose_result() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.outcome = 'accepted' AND OLD.outcome IS NULL AND nextval('public.lose_result') = 1 THEN
				RAISE EXCEPTION 'injected: result lost';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER lose_result BEFORE UPDATE ON switchboard.message_attempts
			FOR EACH ROW EXECUTE FUNCTION public.lose_result();`)
	require.NoError(t, err)

	const n = 20
	ids := b.enqueueN(t, "lost-", n, nil)
	reconciled := 0
	for _, id := range ids {
		m := b.waitJob(t, id, "completed")
		require.NotNil(t, m.SID)
		switch a := b.attempts(t, id); a[0] {
		case "reconciled_found":
			require.Equal(t, []string{"reconciled_found"}, a)
			reconciled++
			var errText string
			require.NoError(t, b.pool.QueryRow(ctx, `SELECT errors[1]->>'error' FROM switchboard.river_job
				WHERE id = (SELECT job_id FROM switchboard.messages WHERE id = $1)`, id).Scan(&errText))
			require.Contains(t, errText, "error recording provider id")
			require.NotContains(t, errText, testBody, "no PHI in job errors")
			require.NotContains(t, errText, "+1201555", "no phone numbers in job errors")
		default:
			require.Equal(t, []string{"accepted"}, a)
		}
	}
	require.Positive(t, reconciled, "the lost batch's messages were reconciled")
	require.Equal(t, n, b.sandbox.CreateCalls(), "no message was sent twice")
	for id, c := range b.sentPerMessage(t) {
		require.Equal(t, 1, c, "message %d", id)
	}
}

// bare is a send worker's parts without a River client working the queue:
// the test calls Work itself.
type bare struct {
	pool    *pgxpool.Pool
	sandbox *twiliosandbox.Server
	tw      *twilio.Client
	logger  *slog.Logger
}

func newBare(t *testing.T) *bare {
	t.Helper()
	pool, _ := dbtest.NewPool(t)
	logger := phiFreeLogger(t)
	sandbox := twiliosandbox.New(twiliosandbox.Config{AccountSID: testSID, AuthToken: testToken}, logger)
	srv := httptest.NewServer(sandbox)
	t.Cleanup(srv.Close)
	tw, err := twilio.New(twilio.Config{AccountSID: testSID, AuthToken: testToken, FromNumber: testFrom,
		APIBaseURL: srv.URL, RequestTimeout: 2 * time.Second, ValidityPeriod: time.Hour}, nil)
	require.NoError(t, err)
	return &bare{pool: pool, sandbox: sandbox, tw: tw, logger: logger}
}

func (b *bare) worker() *sms.SendWorker {
	return sms.NewSendWorker(sms.Config{InFlightGrace: 30 * time.Second}, b.pool, sms.SendDeps{Providers: []sms.Provider{{Sender: b.tw}}}, b.logger)
}

// enqueue commits one message and returns it and its job as River hands it
// to Work (running, attempt 1: as River's fetch leaves it).
func (b *bare) enqueue(t *testing.T, key string) (int64, *river.Job[jobs.SMSSendArgs]) {
	t.Helper()
	ctx := context.Background()
	var id, jobID int64
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		var err error
		id, err = jobs.SendSMS(ctx, tx, jobs.SendSMSParams{IdempotencyKey: key, To: testTo, Body: testBody})
		return err
	}))
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT job_id FROM switchboard.messages WHERE id = $1", id).Scan(&jobID))
	_, err := b.pool.Exec(ctx, "UPDATE switchboard.river_job SET state = 'running', attempt = 1, attempted_at = now() WHERE id = $1", jobID)
	require.NoError(t, err)
	inserter, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{Schema: worker.Schema})
	require.NoError(t, err)
	row, err := inserter.JobGet(ctx, jobID)
	require.NoError(t, err)
	return id, &river.Job[jobs.SMSSendArgs]{JobRow: row, Args: jobs.SMSSendArgs{MessageID: id}}
}

// A second run of a job (River's rescuer re-running a job it thought
// stuck) waits for the first run's claim and then sees its attempt: it
// waits out the in-flight grace instead of sending again.
func TestRunWaitingForTheLockSeesTheClaimBeforeIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBare(t)
	id, job := b.enqueue(t, "race")

	// The first run's claim, not yet committed.
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, "SELECT 1 FROM switchboard.messages WHERE id = $1 FOR UPDATE", id)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "UPDATE switchboard.messages SET status = 'sending', provider = 'twilio' WHERE id = $1", id)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "INSERT INTO switchboard.message_attempts (message_id, provider, job_id, job_attempt) VALUES ($1, 'twilio', $2, 1)", id, job.ID)
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() { done <- b.worker().Work(ctx, job) }()
	require.Eventually(t, func() bool {
		var waiting int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting))
		return waiting > 0
	}, 10*time.Second, 5*time.Millisecond, "the second run waits for the message's lock")
	require.NoError(t, tx.Commit(ctx))

	err = <-done
	var snooze *river.JobSnoozeError
	require.ErrorAs(t, err, &snooze, "the second run waits for the first one's attempt")
	require.Greater(t, snooze.Duration, 20*time.Second)
	require.Zero(t, b.sandbox.CreateCalls(), "nothing was sent by the second run")
}

func TestResultStoredButCompletionLostNeverResends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBare(t)
	id, job := b.enqueue(t, "lost-completion")

	// A worker sends and stores the result, then dies before River
	// completes the job.
	require.NoError(t, b.worker().Work(ctx, job))
	var sid *string
	var state string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT m.provider_message_id, j.state FROM switchboard.messages m
		JOIN switchboard.river_job j ON j.id = m.job_id WHERE m.id = $1`, id).Scan(&sid, &state))
	require.NotNil(t, sid, "the result is durable before the job completes")
	require.Equal(t, "running", state)
	// River's rescuer finds the job stuck and queues it again.
	_, err := b.pool.Exec(ctx, "UPDATE switchboard.river_job SET state = 'available' WHERE id = $1", job.ID)
	require.NoError(t, err)

	// The job runs again.
	workers := river.NewWorkers()
	river.AddWorker(workers, b.worker())
	client, err := worker.NewClient(worker.Config{Queues: "sms=2", FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond},
		b.pool, workers, nil, b.logger)
	require.NoError(t, err)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	require.NoError(t, client.Start(runCtx))
	t.Cleanup(func() {
		stopCtx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = client.StopAndCancel(stopCtx)
	})
	require.Eventually(t, func() bool {
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT state FROM switchboard.river_job WHERE id = $1", job.ID).Scan(&state))
		return state == "completed"
	}, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, 1, b.sandbox.CreateCalls(), "the re-run did not call Twilio")
	var attempts int
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT count(*) FROM switchboard.message_attempts WHERE message_id = $1", id).Scan(&attempts))
	require.Equal(t, 1, attempts)
}

// countingSlots admits every call and counts them.
type countingSlots struct{ n atomic.Int64 }

func (c *countingSlots) Reserve(context.Context, time.Duration) (time.Duration, bool, error) {
	c.n.Add(1)
	return 0, false, nil
}

// A message the shared claim passes over (here: an attempt to reconcile
// first) is sent by the per-job path on the rate-limit slot the shared path
// already took, not on a second one.
func TestPassedOverMessageUsesOneRateLimitSlot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBare(t)
	id, job := b.enqueue(t, "one-slot")
	_, err := b.pool.Exec(ctx, "UPDATE switchboard.river_job SET state = 'available', attempt = 0 WHERE id = $1", job.ID)
	require.NoError(t, err)
	// A run that died after its request left, long ago: the provider never
	// got it, so the message is reconciled as absent and sent.
	_, err = b.pool.Exec(ctx, `INSERT INTO switchboard.message_attempts (message_id, provider, started_at)
		VALUES ($1, 'twilio', now() - interval '10 minutes')`, id)
	require.NoError(t, err)

	slots := &countingSlots{}
	workers := river.NewWorkers()
	river.AddWorker(workers, sms.NewSendWorker(sms.Config{InFlightGrace: 30 * time.Second}, b.pool,
		sms.SendDeps{Providers: []sms.Provider{{Sender: b.tw, Slots: slots}}}, b.logger))
	client, err := worker.NewClient(worker.Config{Queues: "sms=2", FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond},
		b.pool, workers, nil, b.logger)
	require.NoError(t, err)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	require.NoError(t, client.Start(runCtx))
	t.Cleanup(func() {
		stopCtx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = client.StopAndCancel(stopCtx)
	})
	var state string
	require.Eventually(t, func() bool {
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT state FROM switchboard.river_job WHERE id = $1", job.ID).Scan(&state))
		return state == "completed"
	}, 30*time.Second, 20*time.Millisecond)

	require.Equal(t, 1, b.sandbox.CreateCalls())
	rows, err := b.pool.Query(ctx, "SELECT outcome FROM switchboard.message_attempts WHERE message_id = $1 ORDER BY id", id)
	require.NoError(t, err)
	outcomes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"reconciled_absent", "accepted"}, outcomes)
	require.EqualValues(t, 1, slots.n.Load(), "one send, one slot")
}

// The shared path's transactions are pipelined: the claim is two round
// trips before the request (the locks with everything the decision reads,
// then the attempt with the commit), the result three after it (the locks
// with the run check, the attempt, the message with the commit). Nothing
// goes to the server on its own.
func TestSharedPathRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBare(t)
	id, job := b.enqueue(t, "round-trips")

	// Each batch notes how many requests the sandbox had received by then.
	sent := &dbtest.Sent{Note: b.sandbox.CreateCalls}
	traced := dbtest.TracedPool(t, b.pool.Config().ConnString(), sent)
	w := sms.NewSendWorker(sms.Config{InFlightGrace: 30 * time.Second}, traced, sms.SendDeps{Providers: []sms.Provider{{Sender: b.tw}}}, b.logger)

	require.NoError(t, w.Work(ctx, job))
	var sid *string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT provider_message_id FROM switchboard.messages WHERE id = $1`, id).Scan(&sid))
	require.NotNil(t, sid, "sent and recorded")

	batches, lones := sent.Seen()
	require.Zero(t, lones, "no statement went on its own")
	require.Len(t, batches, 5)
	for i, want := range []struct{ requests, statements int }{{0, 5}, {0, 2}, {1, 4}, {1, 1}, {1, 2}} {
		require.Equal(t, want.requests, batches[i].Note, "batch %d: requests before it", i)
		require.Len(t, batches[i].SQL, want.statements, "batch %d: %v", i, batches[i].SQL)
	}
	require.Equal(t, "begin", batches[0].SQL[0])
	require.Equal(t, "commit", batches[1].SQL[1])
	require.Equal(t, "begin", batches[2].SQL[0])
	require.Equal(t, "commit", batches[4].SQL[1])
}

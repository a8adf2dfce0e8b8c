package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/deadletter"
	"github.com/switchboard-health/switchboard/internal/worker"
)

type failArgs struct {
	N    int    `json:"n"`
	Mode string `json:"mode"`
}

func (failArgs) Kind() string { return "test_fail" }

func (failArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: "maintenance", MaxAttempts: 1}
}

type failWorker struct {
	river.WorkerDefaults[failArgs]
}

func (w *failWorker) Work(ctx context.Context, job *river.Job[failArgs]) error {
	switch job.Args.Mode {
	case "cancel":
		_ = river.MetadataSet(ctx, "outcome_class", "permanent")
		return river.JobCancel(fmt.Errorf("error doing test work: credentials rejected (code %d)", job.Args.N))
	default:
		return fmt.Errorf("error doing test work: attempt %d failed", job.Attempt)
	}
}

type blockArgs struct{}

func (blockArgs) Kind() string { return "test_block" }

type blockWorker struct {
	river.WorkerDefaults[blockArgs]
	started chan struct{}
	release chan struct{}
}

func (w *blockWorker) Work(ctx context.Context, job *river.Job[blockArgs]) error {
	close(w.started)
	<-w.release
	return nil
}

type bundle struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
	cfg    worker.Config
}

func setup(t *testing.T, register func(*river.Workers)) *bundle {
	t.Helper()
	pool, _ := dbtest.NewPool(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO switchboard.job_kinds (kind, queue, max_attempts, subject_type, subject_arg, description) VALUES
		('test_fail', 'maintenance', 1, 'thing', 'n', 'test'), ('test_block', 'maintenance', 3, NULL, NULL, 'test')`)
	require.NoError(t, err)
	workers := river.NewWorkers()
	register(workers)
	cfg := worker.Config{
		Queues:              "maintenance=5",
		FetchCooldown:       10 * time.Millisecond,
		FetchPollInterval:   50 * time.Millisecond,
		ShutdownTimeout:     20 * time.Second,
		UnknownKindAttempts: 1,
	}
	client, err := worker.NewClient(cfg, pool, workers, nil, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	return &bundle{pool: pool, client: client, cfg: cfg}
}

func (b *bundle) start(t *testing.T) {
	t.Helper()
	require.NoError(t, b.client.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.client.StopAndCancel(ctx)
	})
}

type deadLetter struct {
	ID     int64
	Class  string
	State  string
	Kind   string
	Errors int
	Subj   *string
}

func waitDeadLetter(t *testing.T, pool *pgxpool.Pool, jobID int64) deadLetter {
	t.Helper()
	var dl deadLetter
	require.Eventually(t, func() bool {
		err := pool.QueryRow(context.Background(),
			"SELECT id, class, state, kind, jsonb_array_length(errors), subject FROM switchboard.dead_letters WHERE job_id = $1", jobID).
			Scan(&dl.ID, &dl.Class, &dl.State, &dl.Kind, &dl.Errors, &dl.Subj)
		return err == nil
	}, 60*time.Second, 50*time.Millisecond, "no dead letter for job %d", jobID)
	return dl
}

func insertRaw(t *testing.T, pool *pgxpool.Pool, kind, args string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, pool.QueryRow(context.Background(),
		`INSERT INTO switchboard.river_job (kind, args, queue, max_attempts) VALUES ($1, $2::jsonb, 'maintenance', 5) RETURNING id`,
		kind, args).Scan(&id))
	_, err := pool.Exec(context.Background(), `SELECT pg_notify('switchboard.river_insert', '{"queue":"maintenance"}')`)
	require.NoError(t, err)
	return id
}

func TestDeadLetters(t *testing.T) {
	t.Parallel()
	b := setup(t, func(w *river.Workers) { river.AddWorker(w, &failWorker{}) })
	b.start(t)
	ctx := context.Background()

	insert := func(args failArgs) int64 {
		res, err := b.client.Insert(ctx, args, nil)
		require.NoError(t, err)
		return res.Job.ID
	}

	finalErr := insert(failArgs{N: 1, Mode: "error"})
	cancelled := insert(failArgs{N: 2, Mode: "cancel"})
	unknown := insertRaw(t, b.pool, "no_such_kind", `{"x": 1}`)
	undecodable := insertRaw(t, b.pool, "test_fail", `{"n": "not a number"}`)

	cases := map[string]struct {
		jobID int64
		class string
		kind  string
	}{
		"FinalError":      {finalErr, "retries_exhausted", "test_fail"},
		"JobCancel":       {cancelled, "permanent", "test_fail"},
		"UnknownKind":     {unknown, "unknown_kind", "no_such_kind"},
		"UndecodableArgs": {undecodable, "undecodable_args", "test_fail"},
	}
	ids := map[string]int64{}
	for name, tc := range cases {
		dl := waitDeadLetter(t, b.pool, tc.jobID)
		require.Equal(t, tc.class, dl.Class, name)
		require.Equal(t, tc.kind, dl.Kind, name)
		require.Equal(t, "open", dl.State, name)
		require.GreaterOrEqual(t, dl.Errors, 1, name)
		ids[name] = dl.ID
	}
	require.Equal(t, "thing/1", *waitDeadLetter(t, b.pool, finalErr).Subj)

	var events int
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT count(*) FROM switchboard.events WHERE kind = 'dead_letter.opened'").Scan(&events))
	require.Equal(t, 4, events)

	t.Run("OutliveRiversJobCleaner", func(t *testing.T) {
		_, err := b.pool.Exec(ctx, "DELETE FROM switchboard.river_job WHERE id = ANY($1)",
			[]int64{finalErr, cancelled, unknown, undecodable})
		require.NoError(t, err)
		var n int
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT count(*) FROM switchboard.dead_letters WHERE state = 'open'").Scan(&n))
		require.Equal(t, 4, n)
	})

	t.Run("RetryRunsItAgainAndIsAudited", func(t *testing.T) {
		newIDs, err := deadletter.Retry(ctx, b.pool, []int64{ids["FinalError"]}, "ops@example")
		require.NoError(t, err)
		require.Len(t, newIDs, 1)
		var state string
		var requeued int64
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT state, requeued_job_id FROM switchboard.dead_letters WHERE id = $1", ids["FinalError"]).
			Scan(&state, &requeued))
		require.Equal(t, "requeued", state)
		require.Equal(t, newIDs[0], requeued)
		// The fresh job runs (and, failing again, becomes a new dead letter).
		again := waitDeadLetter(t, b.pool, newIDs[0])
		require.Equal(t, "retries_exhausted", again.Class)

		var actor, action string
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT actor, action FROM switchboard.audit_log WHERE target_type = 'dead_letter' AND target_id = $1",
			fmt.Sprint(ids["FinalError"])).Scan(&actor, &action))
		require.Equal(t, "ops@example", actor)
		require.Equal(t, "dlq.retry", action)

		_, err = deadletter.Retry(ctx, b.pool, []int64{ids["FinalError"]}, "ops@example")
		require.ErrorContains(t, err, "not open", "a requeued dead letter cannot be retried twice")
	})

	t.Run("UnknownKindRetriesWhereItWas", func(t *testing.T) {
		newIDs, err := deadletter.Retry(ctx, b.pool, []int64{ids["UnknownKind"]}, "ops@example")
		require.NoError(t, err)
		var kind, queue string
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT kind, queue FROM switchboard.river_job WHERE id = $1", newIDs[0]).Scan(&kind, &queue))
		require.Equal(t, []string{"no_such_kind", "maintenance"}, []string{kind, queue})
	})

	t.Run("PurgeIsAllOrNothingAndAudited", func(t *testing.T) {
		_, err := deadletter.Purge(ctx, b.pool, []int64{ids["JobCancel"], 999999}, "ops@example")
		require.ErrorContains(t, err, "999999")
		var state string
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT state FROM switchboard.dead_letters WHERE id = $1", ids["JobCancel"]).Scan(&state))
		require.Equal(t, "open", state, "nothing purged when one id is bad")

		n, err := deadletter.Purge(ctx, b.pool, []int64{ids["JobCancel"]}, "ops@example")
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT state FROM switchboard.dead_letters WHERE id = $1", ids["JobCancel"]).Scan(&state))
		require.Equal(t, "purged", state)
		var audits int
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT count(*) FROM switchboard.audit_log WHERE action = 'dlq.purge'").Scan(&audits))
		require.Equal(t, 1, audits)
	})

	t.Run("ShowAndListAreAudited", func(t *testing.T) {
		dl, err := deadletter.Show(ctx, b.pool, ids["UndecodableArgs"], "ops@example")
		require.NoError(t, err)
		require.Equal(t, "undecodable_args", dl.Class)
		_, err = deadletter.Show(ctx, b.pool, 424242, "ops@example")
		require.ErrorIs(t, err, deadletter.ErrNotFound)
		rows, err := deadletter.List(ctx, b.pool, deadletter.Filter{State: "open"}, "ops@example")
		require.NoError(t, err)
		require.NotEmpty(t, rows)
		var audits int
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT count(*) FROM switchboard.audit_log WHERE action IN ('dlq.show', 'dlq.list')").Scan(&audits))
		require.Equal(t, 2, audits)
	})
}

func TestCancelledWithoutErrorIsNotADeadLetter(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	ctx := context.Background()
	id := insertRaw(t, pool, "test_fail", `{}`)
	// What River UI's cancel does to a job that has not run.
	_, err := pool.Exec(ctx, "UPDATE switchboard.river_job SET state = 'cancelled', finalized_at = now() WHERE id = $1", id)
	require.NoError(t, err)
	var n int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM switchboard.dead_letters").Scan(&n))
	require.Zero(t, n)
}

func TestGracefulStopFinishesRunningJob(t *testing.T) {
	t.Parallel()
	bw := &blockWorker{started: make(chan struct{}), release: make(chan struct{})}
	b := setup(t, func(w *river.Workers) { river.AddWorker(w, bw) })
	ctx, cancel := context.WithCancel(context.Background())
	res, err := b.client.Insert(ctx, blockArgs{}, &river.InsertOpts{Queue: "maintenance"})
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() { done <- worker.Run(ctx, b.cfg, b.client, slog.New(slog.DiscardHandler)) }()
	select {
	case <-bw.started:
	case <-time.After(60 * time.Second):
		t.Fatal("job never started")
	}
	cancel() // what SIGTERM does through the signal context

	select {
	case err := <-done:
		t.Fatalf("worker exited before its running job finished: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(bw.release)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("worker did not stop")
	}
	var state string
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT state FROM switchboard.river_job WHERE id = $1", res.Job.ID).Scan(&state))
	require.Equal(t, "completed", state)
}

func TestParseQueues(t *testing.T) {
	t.Parallel()
	q, err := worker.ParseQueues("sms=200, inbound=20")
	require.NoError(t, err)
	require.Equal(t, 200, q["sms"].MaxWorkers)
	require.Equal(t, 20, q["inbound"].MaxWorkers)
	for _, bad := range []string{"", "sms", "sms=0", "sms=x", "=3", "sms=1,sms=2"} {
		_, err := worker.ParseQueues(bad)
		require.Error(t, err, bad)
	}
}

func TestRiverUIRetryMarksTheDeadLetterRequeued(t *testing.T) {
	t.Parallel()
	b := setup(t, func(w *river.Workers) { river.AddWorker(w, &failWorker{}) })
	b.start(t)
	ctx := context.Background()
	res, err := b.client.Insert(ctx, failArgs{N: 7}, nil)
	require.NoError(t, err)
	dl := waitDeadLetter(t, b.pool, res.Job.ID)

	// What River UI's retry button calls.
	_, err = b.client.JobRetry(ctx, res.Job.ID)
	require.NoError(t, err)
	var state, actor string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT d.state, a.actor FROM switchboard.dead_letters d
		JOIN switchboard.audit_log a ON a.target_id = d.id::text AND a.action = 'dlq.retry' WHERE d.id = $1`, dl.ID).Scan(&state, &actor))
	require.Equal(t, "requeued", state)
	require.Equal(t, "river_ui", actor)
}

// River UI shows a dead job's metadata: it names the dead letter, its class
// and its subject (migration 00065), and loses them when River UI retries it.
func TestDeadJobMetadataNamesItsDeadLetter(t *testing.T) {
	t.Parallel()
	b := setup(t, func(w *river.Workers) { river.AddWorker(w, &failWorker{}) })
	b.start(t)
	ctx := context.Background()
	res, err := b.client.Insert(ctx, failArgs{N: 42, Mode: "cancel"}, nil)
	require.NoError(t, err)
	dl := waitDeadLetter(t, b.pool, res.Job.ID)

	var meta map[string]any
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT metadata FROM switchboard.river_job WHERE id = $1", res.Job.ID).Scan(&meta))
	require.Equal(t, float64(dl.ID), meta["dead_letter_id"])
	require.Equal(t, "permanent", meta["dead_letter_class"])
	require.Equal(t, "thing/42", meta["dead_letter_subject"])

	unknown := insertRaw(t, b.pool, "no_such_kind", `{"x": 1}`)
	udl := waitDeadLetter(t, b.pool, unknown)
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT metadata FROM switchboard.river_job WHERE id = $1", unknown).Scan(&meta))
	require.Equal(t, float64(udl.ID), meta["dead_letter_id"])
	require.Equal(t, "unknown_kind", meta["dead_letter_class"])
	require.NotContains(t, meta, "dead_letter_subject", "no subject for an unknown kind")

	// River UI's retry: the job is no longer dead.
	_, err = b.client.JobRetry(ctx, res.Job.ID)
	require.NoError(t, err)
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT metadata FROM switchboard.river_job WHERE id = $1", res.Job.ID).Scan(&meta))
	require.NotContains(t, meta, "dead_letter_id")
}

package resilience_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/internal/worker"
)

type callArgs struct{}

func (callArgs) Kind() string { return "test_call" }

func (callArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: "maintenance"} }

// callWorker calls its destination the way every worker does: ask Ready,
// hold through Snooze when it is unavailable.
type callWorker struct {
	river.WorkerDefaults[callArgs]
	dest  *resilience.Destination
	calls atomic.Int32
}

func (w *callWorker) Work(ctx context.Context, job *river.Job[callArgs]) error {
	if err := w.dest.Ready(); err != nil {
		return resilience.Snooze(ctx, job.JobRow, err, time.Hour)
	}
	w.calls.Add(1)
	return nil
}

// A pause committed before a job starts holds it — no waiting for the
// next health flush — and River UI shows why in the job's metadata;
// resuming makes the held job available at once, not after its snooze.
func TestPauseHoldsJobsThatStartAfterItAndResumeWakesThem(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO switchboard.job_kinds (kind, queue, max_attempts, description, destination)
		VALUES ('test_call', 'maintenance', 3, 'test', 'testvendor')`)
	require.NoError(t, err)
	reg := resilience.New(resilience.DBStore{Pool: pool})
	w := &callWorker{dest: reg.Register("testvendor", settings(t, nil), classify)}
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	// No reg.Run: only the job-start read can see the pause.
	client, err := worker.NewClient(worker.Config{
		Queues: "maintenance=5", FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond,
	}, pool, workers, nil, slog.New(slog.DiscardHandler), reg.Hook())
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.StopAndCancel(stopCtx)
	})

	_, err = pool.Exec(ctx, "SELECT switchboard.destination_set_paused('testvendor', true, 'ops@test')")
	require.NoError(t, err)
	res, err := client.Insert(ctx, callArgs{}, nil)
	require.NoError(t, err)

	var (
		state string
		meta  map[string]any
	)
	read := func() {
		require.NoError(t, pool.QueryRow(ctx, "SELECT state, metadata FROM switchboard.river_job WHERE id = $1", res.Job.ID).
			Scan(&state, &meta))
	}
	require.Eventually(t, func() bool { read(); return state == "scheduled" }, 30*time.Second, 20*time.Millisecond)
	require.Zero(t, w.calls.Load(), "the paused destination was called")
	require.Equal(t, "paused", meta["hold_reason"])
	require.Equal(t, "testvendor", meta["hold_destination"])
	until, err := time.Parse(time.RFC3339, meta["hold_until"].(string))
	require.NoError(t, err)
	require.True(t, until.After(time.Now()), "held until a time to come")

	_, err = pool.Exec(ctx, "SELECT switchboard.destination_set_paused('testvendor', false, 'ops@test')")
	require.NoError(t, err)
	read()
	require.NotEqual(t, "scheduled", state, "resume made the held job available at once")

	require.Eventually(t, func() bool { read(); return state == "completed" }, 30*time.Second, 20*time.Millisecond)
	require.EqualValues(t, 1, w.calls.Load())
	require.Nil(t, meta["hold_reason"], "a run that is not held clears the hold River UI showed")
}

// HoldFor records any hold's reason; the per-destination reasons come from
// Snooze, the others (rate slot, quiet hours) from the workers.
func TestHoldForReasons(t *testing.T) {
	t.Parallel()
	for _, r := range []string{resilience.HoldPaused, resilience.HoldBreakerOpen, resilience.HoldBusy,
		resilience.HoldUnconfigured, resilience.HoldRateSlot, resilience.HoldQuietHours,
		resilience.HoldRateLimit, resilience.HoldThrottled} {
		require.NotEmpty(t, r)
	}
	err := resilience.HoldFor(context.Background(), resilience.HoldRateSlot, "twilio", 10*time.Millisecond)
	var snooze *river.JobSnoozeError
	require.ErrorAs(t, err, &snooze)
	require.Equal(t, time.Second, snooze.Duration, "at least a second")
}

// TestThrottledHoldIsCapped: a destination's Retry-After holds a throttled
// job for at most an hour (MaxThrottleWait), however long the header says:
// a broken or hostile server answering Retry-After: 999999999 used to park
// the job for 31 years. Holds of our own making (a scheduled send) are not
// capped.
func TestThrottledHoldIsCapped(t *testing.T) {
	t.Parallel()
	var snooze *river.JobSnoozeError
	require.ErrorAs(t, resilience.HoldFor(context.Background(), resilience.HoldThrottled, "twilio", 999999999*time.Second), &snooze)
	require.Equal(t, time.Hour, snooze.Duration)
	require.Equal(t, time.Hour, resilience.MaxThrottleWait)
	require.ErrorAs(t, resilience.HoldFor(context.Background(), resilience.HoldThrottled, "twilio", 7*time.Minute), &snooze)
	require.Equal(t, 7*time.Minute, snooze.Duration, "a shorter Retry-After is honoured")
	require.ErrorAs(t, resilience.HoldFor(context.Background(), resilience.HoldScheduled, "", 48*time.Hour), &snooze)
	require.Equal(t, 48*time.Hour, snooze.Duration)
}

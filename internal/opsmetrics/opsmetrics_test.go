package opsmetrics_test

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/opsmetrics"
)

// seedSQL inserts River jobs in every state over a few queues, destination
// health rows and dead letters in every state. q_idle is known to River but
// empty; q_done holds only finalized jobs.
const seedSQL = `
INSERT INTO switchboard.river_queue (name, updated_at) VALUES ('q_idle', now());

INSERT INTO switchboard.river_job (kind, args, queue, state, scheduled_at, max_attempts, attempt, finalized_at) VALUES
    ('sms_send', '{}', 'q_busy', 'available', now() - interval '1 hour', 10, 0, NULL),
    ('sms_send', '{}', 'q_busy', 'available', now() - interval '10 minutes', 10, 0, NULL),
    ('sms_send', '{}', 'q_busy', 'scheduled', now() + interval '1 hour', 10, 0, NULL),
    ('sms_send', '{}', 'q_busy', 'scheduled', now() + interval '2 hours', 10, 0, NULL),
    ('sms_send', '{}', 'q_busy', 'retryable', now() + interval '1 minute', 10, 1, NULL),
    ('sms_send', '{}', 'q_busy', 'running', now(), 10, 1, NULL),
    ('sms_send', '{}', 'q_busy', 'pending', now(), 10, 0, NULL),
    ('sms_send', '{}', 'q_busy', 'completed', now() - interval '1 day', 10, 1, now()),
    ('sms_send', '{}', 'q_busy', 'cancelled', now() - interval '1 day', 10, 1, now()),
    ('sms_send', '{}', 'q_busy', 'discarded', now() - interval '1 day', 10, 10, now()),
    ('sms_send', '{}', 'q_running', 'running', now() - interval '3 hours', 10, 1, NULL),
    ('sms_send', '{}', 'q_done', 'completed', now() - interval '1 day', 10, 1, now());

INSERT INTO switchboard.destination_health
    (destination, last_success_at, last_failure_at, last_failure_class, consecutive_failures, breaker_state, calls_total, last_probe_at)
VALUES
    ('twilio', '2026-01-02T10:00:00Z', '2026-01-02T09:00:00Z', 'retryable', 0, 'closed', 120, NULL),
    ('telnyx', '2026-01-02T09:00:00Z', '2026-01-02T10:00:00Z', 'unavailable', 5, 'open', 40, '2026-01-02T10:05:00Z'),
    ('ehr:epic', NULL, NULL, NULL, 0, 'half-open', 0, NULL);
SELECT switchboard.destination_set_paused('telnyx', true, 'alice');

INSERT INTO switchboard.dead_letters (job_id, kind, queue, args, attempts, max_attempts, class, job_state, state) VALUES
    (101, 'sms_send', 'sms', '{}', 10, 10, 'retries_exhausted', 'discarded', 'open'),
    (102, 'sms_send', 'sms', '{}', 1, 10, 'permanent', 'cancelled', 'open'),
    (103, 'sms_send', 'sms', '{}', 10, 10, 'retries_exhausted', 'discarded', 'purged'),
    (104, 'sms_send', 'sms', '{}', 10, 10, 'retries_exhausted', 'discarded', 'requeued'),
    (105, 'legacy_kind', 'default', '{}', 1, 1, 'unknown_kind', 'discarded', 'open'),
    (106, 'webhook_process', 'inbound', '{}', 1, 10, 'permanent', 'cancelled', 'purged');
`

type testBundle struct {
	pool *pgxpool.Pool
	// kinds and queues are those of switchboard.job_kinds: later migrations
	// add kinds, so expectations are built from the table.
	kinds  []string
	queues []string
}

// setup gives a fresh migrated database, seeded with seedSQL when seed is
// true.
func setup(t *testing.T, seed bool) *testBundle {
	t.Helper()
	pool, _ := dbtest.NewPool(t)
	if seed {
		_, err := pool.Exec(t.Context(), seedSQL)
		require.NoError(t, err)
	}
	b := &testBundle{pool: pool}
	rows, err := pool.Query(t.Context(), "SELECT kind, queue FROM switchboard.job_kinds ORDER BY kind")
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var kind, queue string
		require.NoError(t, rows.Scan(&kind, &queue))
		b.kinds = append(b.kinds, kind)
		if !slices.Contains(b.queues, queue) {
			b.queues = append(b.queues, queue)
		}
	}
	require.NoError(t, rows.Err())
	require.Contains(t, b.kinds, "sms_send")
	require.Contains(t, b.kinds, "webhook_process")
	return b
}

// deadPool is a pool whose server refuses connections: a database that is
// down.
func deadPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	pool, err := pgxpool.New(t.Context(), "postgres://switchboard@"+addr+"/switchboard?sslmode=disable&connect_timeout=5")
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func ptr[T any](v T) *T { return &v }

func TestReadSnapshot(t *testing.T) {
	t.Parallel()

	t.Run("ReflectsRows", func(t *testing.T) {
		t.Parallel()
		b := setup(t, true)
		before := time.Now()

		snap, err := opsmetrics.ReadSnapshot(t.Context(), b.pool)
		require.NoError(t, err)
		require.False(t, snap.GeneratedAt.Before(before.Truncate(time.Second)))

		queues := map[string]opsmetrics.Queue{}
		var names []string
		for _, q := range snap.Queues {
			queues[q.Name] = q
			names = append(names, q.Name)
		}
		require.True(t, slices.IsSorted(names), "queues are sorted by name: %v", names)
		busy := queues["q_busy"]
		require.Equal(t, int64(2), busy.Available)
		require.Equal(t, int64(2), busy.Scheduled)
		require.Equal(t, int64(1), busy.Retryable)
		require.Equal(t, int64(1), busy.Running)
		// The oldest available job was scheduled an hour before the seed.
		require.GreaterOrEqual(t, busy.OldestAvailable, time.Hour)
		require.Less(t, busy.OldestAvailable, 2*time.Hour)

		require.Equal(t, opsmetrics.Queue{Name: "q_running", Running: 1}, queues["q_running"])
		require.Equal(t, opsmetrics.Queue{Name: "q_idle"}, queues["q_idle"], "a queue of river_queue without jobs is listed")
		for _, q := range b.queues {
			require.Contains(t, queues, q, "a queue of job_kinds is listed")
		}
		require.NotContains(t, queues, "q_done", "finalized jobs are not counted")

		wantDead := map[string]int64{"sms_send": 2, "legacy_kind": 1}
		for _, k := range b.kinds {
			if _, ok := wantDead[k]; !ok {
				wantDead[k] = 0
			}
		}
		require.Equal(t, wantDead, snap.DeadLettersOpen)

		require.Len(t, snap.Destinations, 3)
		epic, telnyx, twilio := snap.Destinations[0], snap.Destinations[1], snap.Destinations[2]
		require.Equal(t, "ehr:epic", epic.Name)
		require.Equal(t, opsmetrics.BreakerHalfOpen, epic.BreakerState)
		require.Nil(t, epic.LastSuccessAt)
		require.True(t, epic.Up())

		require.Equal(t, "telnyx", telnyx.Name)
		require.Equal(t, opsmetrics.BreakerOpen, telnyx.BreakerState)
		require.Equal(t, ptr("unavailable"), telnyx.LastFailureClass)
		require.Equal(t, int32(5), telnyx.ConsecutiveFailures)
		require.Equal(t, int64(40), telnyx.CallsTotal)
		require.True(t, telnyx.Paused)
		require.Equal(t, ptr("alice"), telnyx.PausedBy)
		require.NotNil(t, telnyx.PausedAt)
		require.Equal(t, time.Date(2026, 1, 2, 10, 5, 0, 0, time.UTC), telnyx.LastProbeAt.UTC())
		require.False(t, telnyx.Up())

		require.Equal(t, "twilio", twilio.Name)
		require.Equal(t, time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC), twilio.LastSuccessAt.UTC())
		require.False(t, twilio.Paused)
		require.Nil(t, twilio.PausedBy)
		require.True(t, twilio.Up())
	})

	t.Run("EmptyDatabase", func(t *testing.T) {
		t.Parallel()
		b := setup(t, false)
		snap, err := opsmetrics.ReadSnapshot(t.Context(), b.pool)
		require.NoError(t, err)
		require.Empty(t, snap.Destinations)
		require.Len(t, snap.Queues, len(b.queues))
		for _, q := range snap.Queues {
			require.Equal(t, opsmetrics.Queue{Name: q.Name}, q)
		}
		require.Len(t, snap.DeadLettersOpen, len(b.kinds))
	})

	t.Run("DatabaseDown", func(t *testing.T) {
		t.Parallel()
		_, err := opsmetrics.ReadSnapshot(t.Context(), deadPool(t))
		require.Error(t, err)
	})
}

func TestDestinationUp(t *testing.T) {
	t.Parallel()
	early := time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC)
	late := early.Add(time.Hour)
	tests := []struct {
		name             string
		success, failure *time.Time
		want             bool
	}{
		{"NeverCalled", nil, nil, true},
		{"OnlySucceeded", &late, nil, true},
		{"OnlyFailed", nil, &late, false},
		{"RecoveredAfterFailure", &late, &early, true},
		{"FailedAfterSuccess", &early, &late, false},
		{"SameInstant", &late, &late, false},
	}
	for _, tt := range tests {
		d := opsmetrics.Destination{LastSuccessAt: tt.success, LastFailureAt: tt.failure}
		require.Equal(t, tt.want, d.Up(), tt.name)
	}
}

// expected renders gauge samples in the text format testutil compares with.
func expected(name, help, label string, values map[string]float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s{%s=%q} %g\n", name, label, k, values[k])
	}
	return b.String()
}

const (
	helpAvailable = "River jobs available to work, by queue."
	helpDead      = "Open dead letters, by job kind (0 for every known kind without any)."
	helpUp        = "1 when the destination's last success is newer than its last failure (or it never failed), else 0."
	helpBreaker   = "Circuit breaker of the destination: 0 closed, 1 half-open, 2 open."
	helpPaused    = "1 when an operator paused calls to the destination, else 0."
	helpErrors    = "Scrapes whose operational snapshot (queues, dead letters, destinations) could not be read from the database."
)

func errorsText(n int) string {
	return fmt.Sprintf("# HELP switchboard_opsmetrics_errors_total %s\n# TYPE switchboard_opsmetrics_errors_total counter\nswitchboard_opsmetrics_errors_total %d\n", helpErrors, n)
}

func TestCollector(t *testing.T) {
	t.Parallel()

	t.Run("ExportsSnapshot", func(t *testing.T) {
		t.Parallel()
		b := setup(t, true)
		c := opsmetrics.NewCollector(b.pool)

		available := map[string]float64{"q_busy": 2, "q_running": 0, "q_idle": 0}
		for _, q := range b.queues {
			available[q] = 0
		}
		dead := map[string]float64{"sms_send": 2, "legacy_kind": 1}
		for _, k := range b.kinds {
			if _, ok := dead[k]; !ok {
				dead[k] = 0
			}
		}
		want := expected("switchboard_queue_available_jobs", helpAvailable, "queue", available) +
			expected("switchboard_dead_letters_open", helpDead, "kind", dead) +
			expected("switchboard_destination_up", helpUp, "destination",
				map[string]float64{"twilio": 1, "telnyx": 0, "ehr:epic": 1}) +
			expected("switchboard_destination_breaker_state", helpBreaker, "destination",
				map[string]float64{"twilio": 0, "telnyx": 2, "ehr:epic": 1}) +
			expected("switchboard_destination_paused", helpPaused, "destination",
				map[string]float64{"twilio": 0, "telnyx": 1, "ehr:epic": 0}) +
			errorsText(0)
		require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want),
			"switchboard_queue_available_jobs", "switchboard_dead_letters_open",
			"switchboard_destination_up", "switchboard_destination_breaker_state",
			"switchboard_destination_paused", "switchboard_opsmetrics_errors_total"))

		// Two gauges per queue, three per destination, one per kind, the
		// errors counter.
		require.Equal(t, 2*len(available)+3*3+len(dead)+1, testutil.CollectAndCount(c))
		problems, err := testutil.CollectAndLint(c)
		require.NoError(t, err)
		require.Empty(t, problems)
	})

	t.Run("ZeroForEveryKindWithoutDeadLetters", func(t *testing.T) {
		t.Parallel()
		b := setup(t, false)
		c := opsmetrics.NewCollector(b.pool)
		dead := map[string]float64{}
		for _, k := range b.kinds {
			dead[k] = 0
		}
		want := expected("switchboard_dead_letters_open", helpDead, "kind", dead)
		require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want), "switchboard_dead_letters_open"))
		require.Equal(t, 0, testutil.CollectAndCount(c, "switchboard_destination_up"))
	})

	t.Run("DatabaseDownCountsErrors", func(t *testing.T) {
		t.Parallel()
		c := opsmetrics.NewCollector(deadPool(t))
		// Only the errors counter is sent: no state gauges at all.
		require.Equal(t, 1.0, testutil.ToFloat64(c))
		require.Equal(t, 2.0, testutil.ToFloat64(c))
		require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(errorsText(3))))
	})

	t.Run("TimeoutCountsErrors", func(t *testing.T) {
		t.Parallel()
		b := setup(t, true)
		// Hold a lock the snapshot's read must wait for, until after the
		// scrape gave up.
		tx, err := b.pool.Begin(t.Context())
		require.NoError(t, err)
		t.Cleanup(func() { _ = tx.Rollback(t.Context()) })
		_, err = tx.Exec(t.Context(), "LOCK TABLE switchboard.destination_health IN ACCESS EXCLUSIVE MODE")
		require.NoError(t, err)

		c := opsmetrics.NewCollectorTimeout(b.pool, 100*time.Millisecond)
		require.Equal(t, 1.0, testutil.ToFloat64(c))

		require.NoError(t, tx.Rollback(t.Context()))
		require.Equal(t, 9, testutil.CollectAndCount(c, "switchboard_destination_up",
			"switchboard_destination_breaker_state", "switchboard_destination_paused"))
	})

	t.Run("ConcurrentScrapes", func(t *testing.T) {
		t.Parallel()
		b := setup(t, true)
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(opsmetrics.NewCollector(b.pool))
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				families, err := reg.Gather()
				if err != nil {
					t.Error(err)
					return
				}
				if len(families) != 7 {
					t.Errorf("got %d metric families, want 7", len(families))
				}
			})
		}
		wg.Wait()
		require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(errorsText(0)), "switchboard_opsmetrics_errors_total"))
	})
}

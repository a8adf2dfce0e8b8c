package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/database"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
)

type testBundle struct {
	pool    *pgxpool.Pool
	limiter *Limiter
}

// setup gives each test its own migrated database: takes commit.
func setup(t *testing.T) *testBundle {
	t.Helper()
	pool, _ := dbtest.NewPool(t)
	return &testBundle{pool: pool, limiter: New(pool)}
}

// perMinute is slow enough that no test run lasts long enough for a slot to
// open by itself.
func perMinute(n, burst int) Limit { return Limit{N: n, Period: time.Minute, Burst: burst} }

func requireSQLState(t *testing.T, err error, code, field string) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want a PostgreSQL error, got %v", err)
	require.Equal(t, code, pgErr.Code, pgErr.Message)
	require.True(t, strings.HasPrefix(pgErr.Message, field+" "), "message %q must name %s", pgErr.Message, field)
}

func serverNow(t *testing.T, pool *pgxpool.Pool) time.Time {
	t.Helper()
	var ts time.Time
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT clock_timestamp()").Scan(&ts))
	return ts
}

func counterValue(t *testing.T, destination string) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, waitsTotal.WithLabelValues(destination).Write(&m))
	return m.GetCounter().GetValue()
}

func TestTake(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("BurstIsAdmittedThenTheNextCallWaitsOneInterval", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		limit := perMinute(1, 3) // one slot every 60 s, 3 back to back
		for i := range limit.Burst {
			wait, err := b.limiter.Take(ctx, "test:burst", limit)
			require.NoError(t, err)
			require.Zero(t, wait, "call %d is within the burst", i+1)
		}
		before := serverNow(t, b.pool)
		wait, err := b.limiter.Take(ctx, "test:burst", limit)
		require.NoError(t, err)
		after := serverNow(t, b.pool)
		require.Positive(t, wait)
		require.LessOrEqual(t, wait, limit.Interval(), "the next slot opens at most one interval later")

		// Exactly: the slot opens at tat - (Burst-1)·T, and the server
		// computed the wait at some time between before and after.
		state, err := db.New().RateLimitGet(ctx, b.pool, "test:burst")
		require.NoError(t, err)
		opens := state.Tat.Add(-time.Duration(limit.Burst-1) * limit.Interval())
		require.LessOrEqual(t, wait, opens.Sub(before))
		require.GreaterOrEqual(t, wait, opens.Sub(after))
	})

	t.Run("DenialRecordsNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		q := db.New()
		limit := perMinute(1, 1)
		wait, err := b.limiter.Take(ctx, "test:deny", limit)
		require.NoError(t, err)
		require.Zero(t, wait)
		before, err := q.RateLimitGet(ctx, b.pool, "test:deny")
		require.NoError(t, err)
		for range 5 {
			wait, err := b.limiter.Take(ctx, "test:deny", limit)
			require.NoError(t, err)
			require.Positive(t, wait)
		}
		after, err := q.RateLimitGet(ctx, b.pool, "test:deny")
		require.NoError(t, err)
		require.Equal(t, before, after, "denied calls leave the state alone")
		require.InDelta(t, limit.Interval(), after.Tat.Sub(after.UpdatedAt), float64(time.Second),
			"one admission moves tat one interval past the call")
	})

	t.Run("KeysAreIndependent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		limit := perMinute(1, 1)
		wait, err := b.limiter.Take(ctx, "test:a", limit)
		require.NoError(t, err)
		require.Zero(t, wait)
		wait, err = b.limiter.Take(ctx, "test:a", limit)
		require.NoError(t, err)
		require.Positive(t, wait, "test:a is used up")
		for _, key := range []string{"test:b", "other:a", "test:a:b"} {
			wait, err := b.limiter.Take(ctx, key, limit)
			require.NoError(t, err)
			require.Zero(t, wait, "%s has its own slots", key)
		}
	})

	t.Run("AFasterLimitAppliesAtOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		wait, err := b.limiter.Take(ctx, "test:change", perMinute(1, 1))
		require.NoError(t, err)
		require.Zero(t, wait)
		wait, err = b.limiter.Take(ctx, "test:change", perMinute(1, 1))
		require.NoError(t, err)
		require.Positive(t, wait)
		// The same key with a larger burst has room: state is one timestamp.
		wait, err = b.limiter.Take(ctx, "test:change", perMinute(1, 3))
		require.NoError(t, err)
		require.Zero(t, wait)
	})

	t.Run("WaitsAreCountedByDestination", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		before := counterValue(t, "metrictest")
		for range 3 {
			_, err := b.limiter.Take(ctx, "metrictest:x", perMinute(1, 1))
			require.NoError(t, err)
		}
		require.Equal(t, before+2, counterValue(t, "metrictest"))
	})

	t.Run("InvalidKeyOrLimitNeverReachesTheDatabase", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.limiter.Take(ctx, "no-subkey", perMinute(1, 1))
		require.ErrorIs(t, err, ErrInvalidKey)
		_, err = b.limiter.Take(ctx, "test:x", Limit{N: 1, Period: time.Second})
		require.ErrorIs(t, err, ErrInvalidLimit)
		var n int
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT count(*) FROM switchboard.rate_limits").Scan(&n))
		require.Zero(t, n)
	})

	t.Run("CancelledContextIsAnError", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := b.limiter.Take(cctx, "test:cancel", perMinute(1, 1))
		require.ErrorIs(t, err, context.Canceled)
	})
}

func TestSQLFunctions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("BadArgumentsRaise22023NamingTheField", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ptr := func(s string) *string { return &s }
		for _, tt := range []struct {
			name           string
			key, iv, burst *string
			field          string
		}{
			{"null key", nil, ptr("1 second"), ptr("1"), "key"},
			{"empty key", ptr(""), ptr("1 second"), ptr("1"), "key"},
			{"long key", ptr(strings.Repeat("k", 201)), ptr("1 second"), ptr("1"), "key"},
			{"null interval", ptr("t:k"), nil, ptr("1"), "interval"},
			{"zero interval", ptr("t:k"), ptr("0"), ptr("1"), "interval"},
			{"negative interval", ptr("t:k"), ptr("-1 second"), ptr("1"), "interval"},
			{"interval over a day", ptr("t:k"), ptr("1 day 1 microsecond"), ptr("1"), "interval"},
			{"interval in months", ptr("t:k"), ptr("1 month"), ptr("1"), "interval"},
			{"null burst", ptr("t:k"), ptr("1 second"), nil, "burst"},
			{"zero burst", ptr("t:k"), ptr("1 second"), ptr("0"), "burst"},
			{"negative burst", ptr("t:k"), ptr("1 second"), ptr("-1"), "burst"},
			{"burst over 10000", ptr("t:k"), ptr("1 second"), ptr("10001"), "burst"},
		} {
			_, err := b.pool.Exec(ctx, "SELECT switchboard.rate_limit_take($1::text, $2::text::interval, $3::text::integer)",
				tt.key, tt.iv, tt.burst)
			require.Error(t, err, tt.name)
			requireSQLState(t, err, "22023", tt.field)
		}
		for _, tt := range []struct {
			name string
			idle *string
		}{
			{"null idle", nil},
			{"negative idle", ptr("-1 second")},
		} {
			_, err := b.pool.Exec(ctx, "SELECT switchboard.rate_limit_cleanup($1::text::interval)", tt.idle)
			require.Error(t, err, tt.name)
			requireSQLState(t, err, "22023", "idle")
		}
		var n int
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT count(*) FROM switchboard.rate_limits").Scan(&n))
		require.Zero(t, n, "nothing is written")

		// The largest accepted values work.
		_, err := b.pool.Exec(ctx, "SELECT switchboard.rate_limit_take($1, '1 day', 10000)", strings.Repeat("k", 200))
		require.NoError(t, err)
	})

	t.Run("WorkerMayTakeAppMayNot", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		asRole := func(role, sql string) error {
			return pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+role); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, sql)
				return err
			})
		}
		require.NoError(t, asRole("switchboard_worker", "SELECT switchboard.rate_limit_take('t:role', '1 second', 1)"))
		require.NoError(t, asRole("switchboard_worker", "SELECT switchboard.rate_limit_cleanup('1 hour')"))
		require.NoError(t, asRole("switchboard_worker", "SELECT count(*) FROM switchboard.rate_limits"))
		require.NoError(t, asRole("switchboard_operator", "SELECT count(*) FROM switchboard.rate_limits"))
		for _, tt := range []struct{ role, sql string }{
			{"switchboard_app", "SELECT switchboard.rate_limit_take('t:role', '1 second', 1)"},
			{"switchboard_app", "SELECT count(*) FROM switchboard.rate_limits"},
			{"switchboard_operator", "SELECT switchboard.rate_limit_take('t:role', '1 second', 1)"},
			{"switchboard_operator", "DELETE FROM switchboard.rate_limits"},
		} {
			err := asRole(tt.role, tt.sql)
			var pgErr *pgconn.PgError
			require.True(t, errors.As(err, &pgErr), "%s: %s: want an error, got %v", tt.role, tt.sql, err)
			require.Equal(t, "42501", pgErr.Code, "%s: %s", tt.role, tt.sql)
		}
	})
}

func TestCleanup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("RemovesIdleKeysAndKeepsActiveOnes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.limiter.Take(ctx, "test:active", perMinute(1, 1))
		require.NoError(t, err)
		// Keys last used long ago, written directly: no test waits for time to pass.
		_, err = b.pool.Exec(ctx, `INSERT INTO switchboard.rate_limits (key, tat, updated_at) VALUES
			('test:idle2h', now() - interval '2 hours', now() - interval '2 hours'),
			('test:idle3h', now() - interval '3 hours', now() - interval '3 hours'),
			('test:idle30m', now() - interval '30 minutes', now() - interval '30 minutes')`)
		require.NoError(t, err)

		n, err := b.limiter.Cleanup(ctx, time.Hour)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		rows, err := b.pool.Query(ctx, "SELECT key FROM switchboard.rate_limits ORDER BY key")
		require.NoError(t, err)
		keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.Equal(t, []string{"test:active", "test:idle30m"}, keys)

		n, err = b.limiter.Cleanup(ctx, 0)
		require.NoError(t, err)
		require.Equal(t, 1, n, "idle 0 removes every key whose burst has fully recovered")

		n, err = b.limiter.Cleanup(ctx, time.Hour)
		require.NoError(t, err)
		require.Zero(t, n)

		_, err = b.limiter.Cleanup(ctx, -time.Second)
		require.Error(t, err)
	})

	t.Run("ACleanedKeyStartsWithAFullBurst", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.pool.Exec(ctx, `INSERT INTO switchboard.rate_limits (key, tat, updated_at)
			VALUES ('test:back', now() - interval '2 hours', now() - interval '2 hours')`)
		require.NoError(t, err)
		n, err := b.limiter.Cleanup(ctx, time.Hour)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		for range 2 {
			wait, err := b.limiter.Take(ctx, "test:back", perMinute(1, 2))
			require.NoError(t, err)
			require.Zero(t, wait)
		}
		wait, err := b.limiter.Take(ctx, "test:back", perMinute(1, 2))
		require.NoError(t, err)
		require.Positive(t, wait)
	})
}

// admission is one admitted call as the test saw it: the server decided
// between sent and recv (wall-clock readings, the clock PostgreSQL's
// clock_timestamp reads).
type admission struct{ sent, recv time.Time }

// TestTakeThreeReplicas hammers one key from three pools, as three worker
// replicas would, and checks that no window of time saw more admissions than
// GCRA allows. Nothing depends on how fast the machine is: a slow run admits
// fewer calls, never more.
func TestTakeThreeReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const (
		replicas   = 3
		goroutines = 4
		run        = 2 * time.Second
		key        = "test:three-replicas"
	)
	limit := Limit{N: 20, Period: time.Second, Burst: 5}
	T := limit.Interval()

	first, url := dbtest.NewPool(t)
	pools := []*pgxpool.Pool{first}
	for range replicas - 1 {
		p, err := database.Open(ctx, database.Config{URL: url, MaxConns: goroutines})
		require.NoError(t, err)
		t.Cleanup(p.Close)
		pools = append(pools, p)
	}

	var (
		mu         sync.Mutex
		admitted   []admission
		denied     int
		badWaits   []time.Duration
		firstErr   error
		perReplica [replicas]int
	)
	serverStart := serverNow(t, first)
	start := time.Now()
	var wg sync.WaitGroup
	for r, pool := range pools {
		limiter := New(pool)
		for range goroutines {
			wg.Go(func() {
				var mine []admission
				var no int
				var bad []time.Duration
				var err error
				for time.Since(start) < run {
					sent := time.Now().Round(0) // wall clock, as the server's
					var wait time.Duration
					wait, err = limiter.Take(ctx, key, limit)
					recv := time.Now().Round(0)
					if err != nil {
						break
					}
					if wait == 0 {
						mine = append(mine, admission{sent, recv})
						continue
					}
					no++
					if wait <= 0 || wait > T {
						bad = append(bad, wait)
					}
				}
				mu.Lock()
				defer mu.Unlock()
				admitted = append(admitted, mine...)
				perReplica[r] += len(mine)
				denied += no
				badWaits = append(badWaits, bad...)
				if firstErr == nil {
					firstErr = err
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	serverEnd := serverNow(t, first)
	require.NoError(t, firstErr)

	state, err := db.New().RateLimitGet(ctx, first, key)
	require.NoError(t, err)

	n := len(admitted)
	t.Logf("%d replicas × %d goroutines on one key for %s, limit %s (T = %s): %d calls, %d admitted (per replica %v), %d told to wait",
		replicas, goroutines, elapsed.Round(time.Millisecond), limit, T, n+denied, n, perReplica, denied)

	require.GreaterOrEqual(t, n, limit.Burst, "at least the burst is admitted")
	require.Positive(t, denied, "the key was contended")
	require.Empty(t, badWaits, "every wait is in (0, T]: the next slot is at most one interval away")

	// Server side, exact: every admission moves tat at least T past the
	// previous one (a lost update would move it less) ...
	require.LessOrEqual(t, time.Duration(n)*T, state.Tat.Sub(serverStart),
		"tat advanced %s for %d admissions of %s each", state.Tat.Sub(serverStart), n, T)
	// ... and an admission never leaves tat more than Burst intervals ahead.
	require.LessOrEqual(t, state.Tat.Sub(serverEnd), time.Duration(limit.Burst)*T)
	serverElapsed := serverEnd.Sub(serverStart)
	bound := limit.Burst + int(serverElapsed/T)
	require.LessOrEqual(t, n, bound, "admitted at most burst + elapsed/T")

	// Every window [A, B] of the run: at most Burst + (B-A)/T admissions may
	// be decided inside it. The server decided each call between its sent and
	// recv, so every call whose [sent, recv] lies inside [A, B] was decided
	// inside it and counts against that bound.
	const slack = time.Millisecond // µs truncation and clock slew, far below T
	slices.SortFunc(admitted, func(a, b admission) int { return a.sent.Compare(b.sent) })
	worst := ""
	for i := range admitted {
		for j := range admitted {
			A, B := admitted[i].sent, admitted[j].recv
			if B.Before(A) {
				continue
			}
			in := 0
			for _, a := range admitted {
				if !a.sent.Before(A) && !a.recv.After(B) {
					in++
				}
			}
			if time.Duration(in-limit.Burst)*T > B.Sub(A)+slack && worst == "" {
				worst = fmt.Sprintf("%d admissions within %s", in, B.Sub(A))
			}
		}
	}
	require.Empty(t, worst, "a window saw more than burst + length/T admissions")

	steady := admitted[n-1].recv.Sub(admitted[0].sent)
	t.Logf("observed: %d admitted in %s = %.2f/s overall; after the burst of %d: %.2f/s; configured %d/s burst %d (bound for this run: %d)",
		n, serverElapsed.Round(time.Millisecond), float64(n)/serverElapsed.Seconds(),
		limit.Burst, float64(n-limit.Burst)/steady.Seconds(), limit.N, limit.Burst, bound)
}

func TestReserveBooksEachCallerItsOwnSlot(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	l := New(pool)
	ctx := context.Background()
	// One an hour with a burst of two: gaps between slots are an hour, so
	// the milliseconds between the test's calls cannot blur them.
	limit := Limit{N: 1, Period: time.Hour, Burst: 2}

	var waits []time.Duration
	for range 6 {
		w, booked, err := l.Reserve(ctx, "test:one", limit, 10*time.Hour)
		require.NoError(t, err)
		require.True(t, booked)
		waits = append(waits, w)
	}
	require.Zero(t, waits[0], "the burst goes at once")
	require.Zero(t, waits[1])
	for i := 2; i < len(waits); i++ {
		gap := waits[i] - waits[i-1]
		if i == 2 {
			gap = waits[i]
		}
		require.Greater(t, gap, 59*time.Minute, "slot %d is its own, an interval after the previous", i)
		require.LessOrEqual(t, gap, time.Hour)
	}

	// A slot further than maxWait is not booked and changes nothing.
	w, booked, err := l.Reserve(ctx, "test:one", limit, time.Hour)
	require.NoError(t, err)
	require.False(t, booked)
	require.Greater(t, w, 3*time.Hour)
	w2, booked, err := l.Reserve(ctx, "test:one", limit, 10*time.Hour)
	require.NoError(t, err)
	require.True(t, booked)
	require.Less(t, w2-w, time.Minute, "the refused call did not move the slot")
}

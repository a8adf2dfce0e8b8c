package ratelimit

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
)

// Absolute numbers on a shared host mean little; ratios measured back to
// back do. Every Take benchmark therefore first times plain SELECT 1 round
// trips on the same pool with the same concurrency and reports
// x_select1 = its ns/op divided by theirs. BenchmarkBaselineSelect1 gives the
// baseline on its own.

// BenchmarkTake measures one Take (one statement, one round trip). "admitted"
// uses a limit no run can exhaust, so every call writes; "denied" one that
// is used up at once, so every call is a plain read; "one_key_parallel" has
// 4 × GOMAXPROCS callers contend for one key at 1000/s.
func BenchmarkTake(b *testing.B) {
	pool, _ := dbtest.NewPool(b)
	l := New(pool)
	always := Limit{N: 1000000, Period: time.Second, Burst: MaxBurst} // one per µs
	never := Limit{N: 1, Period: 24 * time.Hour, Burst: 1}

	b.Run("one_key_admitted", func(b *testing.B) {
		benchTake(b, l, func(int) string { return "bench:one" }, always)
	})
	b.Run("one_key_denied", func(b *testing.B) {
		benchTake(b, l, func(int) string { return "bench:denied" }, never)
	})
	b.Run("many_keys_admitted", func(b *testing.B) {
		keys := benchKeys(10000)
		benchTake(b, l, func(i int) string { return keys[i%len(keys)] }, always)
	})
	b.Run("one_key_parallel", func(b *testing.B) {
		benchTakeParallel(b, l, func(int) string { return "bench:parallel" }, Limit{N: 1000, Period: time.Second, Burst: 10})
	})
	b.Run("many_keys_parallel", func(b *testing.B) {
		keys := benchKeys(10000)
		benchTakeParallel(b, l, func(i int) string { return keys[i%len(keys)] }, always)
	})
}

// BenchmarkTakeLoggedTable is one_key_admitted on a logged copy of the table:
// what UNLOGGED saves (the WAL flush at every commit).
func BenchmarkTakeLoggedTable(b *testing.B) {
	ctx := context.Background()
	pool, _ := dbtest.NewPool(b)
	if _, err := pool.Exec(ctx, "ALTER TABLE switchboard.rate_limits SET LOGGED"); err != nil {
		b.Fatal(err)
	}
	always := Limit{N: 1000000, Period: time.Second, Burst: MaxBurst}
	benchTake(b, New(pool), func(int) string { return "bench:logged" }, always)
}

// BenchmarkBaselineSelect1 is a plain SELECT 1 round trip on a pool like
// BenchmarkTake's: the floor any one-statement call pays.
func BenchmarkBaselineSelect1(b *testing.B) {
	pool, _ := dbtest.NewPool(b)
	b.Run("serial", func(b *testing.B) {
		ctx := context.Background()
		for b.Loop() {
			if err := select1(ctx, pool); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(parallelism)
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			for pb.Next() {
				if err := select1(ctx, pool); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func select1(ctx context.Context, pool *pgxpool.Pool) error {
	var one int
	return pool.QueryRow(ctx, "SELECT 1").Scan(&one)
}

func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "bench:user_" + strconv.Itoa(i)
	}
	return keys
}

// parallelism is the RunParallel multiplier: 4 × GOMAXPROCS callers.
const parallelism = 4

// select1Baseline times n SELECT 1 round trips made by callers goroutines
// and returns the wall time per round trip.
func select1Baseline(b *testing.B, pool *pgxpool.Pool, callers int) time.Duration {
	const n = 2000
	ctx := context.Background()
	start := time.Now()
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range n / callers {
				if err := select1(ctx, pool); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start) / time.Duration(n/callers*callers)
}

func reportRatio(b *testing.B, baseline time.Duration) {
	if b.N > 0 && baseline > 0 {
		perOp := float64(b.Elapsed()) / float64(b.N)
		b.ReportMetric(perOp/float64(baseline), "x_select1")
	}
}

func benchTake(b *testing.B, l *Limiter, key func(int) string, limit Limit) {
	ctx := context.Background()
	baseline := select1Baseline(b, l.pool, 1)
	i := 0
	for b.Loop() {
		if _, err := l.Take(ctx, key(i), limit); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportRatio(b, baseline)
}

func benchTakeParallel(b *testing.B, l *Limiter, key func(int) string, limit Limit) {
	var next atomic.Int64
	var waits atomic.Int64
	baseline := select1Baseline(b, l.pool, parallelism*runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.SetParallelism(parallelism)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			wait, err := l.Take(ctx, key(int(next.Add(1))), limit)
			if err != nil {
				b.Error(err)
				return
			}
			if wait > 0 {
				waits.Add(1)
			}
		}
	})
	b.ReportMetric(float64(waits.Load())/float64(b.N), "waits/op")
	reportRatio(b, baseline)
}

package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/switchboard-health/switchboard/internal/worker"
)

// running is a started River client and how to stop it.
type running struct {
	client *river.Client[pgx.Tx]
	pool   *pgxpool.Pool
	stop   func()
}

// workerSettings derives the River settings of one case from the run's.
func (e *env) workerSettings(queue string, workers int, poll time.Duration) worker.Config {
	w := e.cfg.Worker
	w.Queues = queue + "=" + strconv.Itoa(workers)
	if poll > 0 {
		w.FetchPollInterval = poll
	}
	return w
}

// startSMS starts the production sms worker (cmd/switchboard's wiring) on
// its own pool, sending through p.
func startSMS(ctx context.Context, e *env, p *provider, workers int, poll time.Duration) (*running, error) {
	return startSMSBatch(ctx, e, p, workers, poll, 0)
}

// startSMSUnshared is startSMS with SMS_BATCH_SIZE=1.
func startSMSUnshared(ctx context.Context, e *env, p *provider, workers int, poll time.Duration) (*running, error) {
	return startSMSBatch(ctx, e, p, workers, poll, 1)
}

func startSMSBatch(ctx context.Context, e *env, p *provider, workers int, poll time.Duration, batchSize int) (*running, error) {
	if e.cfg.NewSMSWorker == nil {
		return nil, fmt.Errorf("no sms worker wiring was given")
	}
	wcfg := e.workerSettings("sms", workers, poll)
	pool, err := e.pool(ctx, wcfg.DBMaxConns, nil)
	if err != nil {
		return nil, err
	}
	sw, err := e.cfg.NewSMSWorker(ctx, pool, SMSWorkerConfig{
		Worker: wcfg, MaxConcurrent: workers, Twilio: p.twilio(), PublicBaseURL: callbackBase, BatchSize: batchSize,
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	return start(ctx, sw.Client, pool, sw.Background)
}

// noopWorker does nothing but note when it ran each job.
type noopWorker struct {
	river.WorkerDefaults[noopArgs]
	mu   sync.Mutex
	seen map[int64]time.Time
	n    atomic.Int64
}

func (w *noopWorker) Work(ctx context.Context, job *river.Job[noopArgs]) error {
	at := time.Now()
	w.mu.Lock()
	if _, dup := w.seen[job.ID]; !dup {
		w.seen[job.ID] = at
	}
	w.mu.Unlock()
	w.n.Add(1)
	return nil
}

func (w *noopWorker) take() map[int64]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.seen
	w.seen = map[int64]time.Time{}
	return s
}

// startNoop starts River's baseline: a client with the same settings
// (internal/worker.NewClient) working no-op jobs.
func startNoop(ctx context.Context, e *env, workers int) (*running, *noopWorker, error) {
	wcfg := e.workerSettings(noopQueue, workers, 0)
	pool, err := e.pool(ctx, wcfg.DBMaxConns, nil)
	if err != nil {
		return nil, nil, err
	}
	nw := &noopWorker{seen: map[int64]time.Time{}}
	ws := river.NewWorkers()
	river.AddWorker(ws, nw)
	client, err := worker.NewClient(wcfg, pool, ws, nil, e.logger)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	r, err := start(ctx, client, pool, nil)
	return r, nw, err
}

func start(ctx context.Context, client *river.Client[pgx.Tx], pool *pgxpool.Pool, background func(context.Context)) (*running, error) {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if err := client.Start(runCtx); err != nil {
		cancel()
		pool.Close()
		return nil, fmt.Errorf("error starting river client: %w", err)
	}
	var wg sync.WaitGroup
	if background != nil {
		wg.Add(1)
		go func() { defer wg.Done(); background(runCtx) }()
	}
	return &running{client: client, pool: pool, stop: func() {
		stopCtx, c := context.WithTimeout(context.Background(), 15*time.Second)
		defer c()
		if err := client.Stop(stopCtx); err != nil {
			_ = client.StopAndCancel(stopCtx)
		}
		cancel()
		wg.Wait()
		pool.Close()
	}}, nil
}

// insertMessages enqueues n messages through switchboard.send_sms, in
// transactions of 500, and returns their ids.
func insertMessages(ctx context.Context, e *env, n int, tag string) ([]int64, error) {
	pool, err := e.pool(ctx, 2, nil)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	ids := make([]int64, 0, n)
	for from := 0; from < n; from += 500 {
		to := min(from+500, n) - 1
		rows, err := pool.Query(ctx, `SELECT switchboard.send_sms($1 || g, '+1201555' || lpad((g % 10000)::text, 4, '0'), $2, 'patient-' || (g % 5000))
			FROM generate_series($3::bigint, $4::bigint) g`, "bench-"+e.runID+"-"+tag+"-", benchBody, from, to)
		if err != nil {
			return nil, err
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return nil, fmt.Errorf("error enqueueing messages: %w", err)
		}
		ids = append(ids, got...)
	}
	return ids, nil
}

// insertNoop enqueues n no-op jobs with River's bulk insert, from an
// insert-only client.
func insertNoop(ctx context.Context, e *env, n int) error {
	pool, err := e.pool(ctx, 2, nil)
	if err != nil {
		return err
	}
	defer pool.Close()
	ws := river.NewWorkers()
	river.AddWorker(ws, &noopWorker{})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: worker.Schema, Workers: ws, Logger: e.logger})
	if err != nil {
		return err
	}
	for from := 0; from < n; from += 5000 {
		batch := make([]river.InsertManyParams, 0, 5000)
		for i := from; i < min(from+5000, n); i++ {
			batch = append(batch, river.InsertManyParams{Args: noopArgs{Seq: int64(i)}})
		}
		if _, err := client.InsertManyFast(ctx, batch); err != nil {
			return fmt.Errorf("error inserting no-op jobs: %w", err)
		}
	}
	return nil
}

// waitFor polls count until it reaches n or timeout passes.
func waitFor(ctx context.Context, pool *pgxpool.Pool, what string, n int, timeout time.Duration, count func(context.Context, *pgxpool.Pool) (int, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		got, err := count(ctx, pool)
		if err != nil {
			return err
		}
		if got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d of %d after %s: %w", what, got, n, timeout, errTimeout)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

func countQuery(sql string, args ...any) func(context.Context, *pgxpool.Pool) (int, error) {
	return func(ctx context.Context, pool *pgxpool.Pool) (int, error) {
		var n int
		err := pool.QueryRow(ctx, sql, args...).Scan(&n)
		return n, err
	}
}

var (
	countAccepted      = countQuery("SELECT count(*) FROM switchboard.messages WHERE provider_message_id IS NOT NULL")
	countNoopCompleted = countQuery("SELECT count(*) FROM switchboard.river_job WHERE queue = $1 AND state = 'completed'", noopQueue)
)

// acceptedAt returns when each accepted message's provider id was stored.
func acceptedAt(ctx context.Context, pool *pgxpool.Pool) (map[int64]time.Time, error) {
	rows, err := pool.Query(ctx, "SELECT id, accepted_at FROM switchboard.messages WHERE accepted_at IS NOT NULL")
	if err != nil {
		return nil, err
	}
	out := map[int64]time.Time{}
	var (
		id int64
		at time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &at}, func() error { out[id] = at; return nil })
	return out, err
}

// offer runs fn rate times a second for d from conc goroutines, open loop:
// a slow call delays no later one beyond the goroutines available. It
// returns how many calls were made.
func offer(ctx context.Context, rate int, d time.Duration, conc int, fn func(ctx context.Context, n int64) error) (int64, error) {
	total := int64(float64(rate) * d.Seconds())
	ticks := make(chan int64, total+1)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range ticks {
				if err := fn(runCtx, n); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		}()
	}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	var sent int64
	for sent < total && runCtx.Err() == nil {
		due := min(int64(time.Since(start)/interval)+1, total)
		for ; sent < due; sent++ {
			ticks <- sent
		}
		time.Sleep(time.Millisecond)
	}
	close(ticks)
	wg.Wait()
	if firstErr != nil {
		return sent, firstErr
	}
	return sent, ctx.Err()
}

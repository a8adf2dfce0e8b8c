// Package worker configures and runs Switchboard's River client: schema
// switchboard, the queues from WORKER_QUEUES, settings chosen from measurements
// rather than River's defaults, dead-letter routing for every failure path,
// job metrics, and a graceful stop.
//
// # Settings
//
// River's defaults cap one client at about MaxWorkers / FetchCooldown
// (100 ms) jobs per second while the machine idles (reference/performance.md:
// 1.0k jobs/s at 100 workers with the default cooldown, 7.9k at 10 ms).
// FetchCooldown defaults to 5 ms: at 200 jobs/s commit-to-vendor p50/p99
// went from 7.96/110 ms at 10 ms to 3.35/38.3 ms (switchboard bench
// --scenarios settings); 2 ms bought nothing more for 2.5× the fetches,
// because the enqueue path already throttles wake-ups to one per queue per
// 5 ms. FetchPollInterval defaults to 100 ms: it bounds the few jobs picked
// up only by polling (a wake-up throttled away), against River's 1 s. Completed jobs are kept one hour: the domain tables
// hold the durable record, and at volume River's 24 h default grows the job
// table by tens of GB a day.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/switchboard-health/switchboard/internal/httpserver"
	"github.com/switchboard-health/switchboard/internal/logging"
	"github.com/switchboard-health/switchboard/internal/telemetry"
)

// Schema is where River's tables live.
const Schema = "switchboard"

// Config is the worker's configuration.
type Config struct {
	Addr string `env:"WORKER_ADDR, default=:8081"`
	// MetricsAddr is where /metrics is served, apart from the probes:
	// loopback by default.
	MetricsAddr string `env:"WORKER_METRICS_ADDR, default=127.0.0.1:9091"`
	// MetricsToken, when set, is the bearer token a scrape must send.
	MetricsToken httpserver.Token `env:"METRICS_TOKEN"`
	Queues       string           `env:"WORKER_QUEUES, default=sms=200,fhir=50,wearables=50,inbound=20,maintenance=5"`

	FetchCooldown     time.Duration `env:"WORKER_FETCH_COOLDOWN, default=5ms"`
	FetchPollInterval time.Duration `env:"WORKER_FETCH_POLL_INTERVAL, default=100ms"`
	// PollOnly makes River poll every FetchPollInterval instead of
	// LISTENing for new jobs: set when DATABASE_POOL_MODE=transaction.
	PollOnly bool
	// DBMaxConns sizes the worker's pgx pool. Workers hold a connection only
	// for their short transactions, never across a vendor call.
	DBMaxConns int32 `env:"WORKER_DB_MAX_CONNS, default=50"`
	// ShutdownTimeout is how long SIGTERM waits for running jobs before
	// cancelling them (they are then retried by another worker).
	ShutdownTimeout time.Duration `env:"WORKER_SHUTDOWN_TIMEOUT, default=30s"`
	// CompletedRetention is how long completed jobs stay visible in River UI.
	CompletedRetention time.Duration `env:"WORKER_COMPLETED_RETENTION, default=1h"`
	// HTTPMaxIdleConnsPerHost keeps connections to each vendor warm: Go's
	// default of 2 halved throughput and left thousands of sockets in
	// TIME_WAIT in our measurements.
	HTTPMaxIdleConnsPerHost int `env:"WORKER_HTTP_MAX_IDLE_PER_HOST, default=256"`
	// UnknownKindAttempts is how many times a job of a kind this worker does
	// not know is retried (another replica of a newer version may know it)
	// before it is cancelled into a dead letter.
	UnknownKindAttempts int `env:"WORKER_UNKNOWN_KIND_ATTEMPTS, default=3"`
	// RescueAfter is when the leader takes back jobs left running by a
	// worker that died (SIGKILL, lost host). It must exceed the longest job
	// timeout; a rescued sms_send reconciles before it sends again.
	RescueAfter time.Duration `env:"WORKER_RESCUE_AFTER, default=1h"`
	// JobTimeout bounds kinds that set no timeout of their own. The rescuer
	// also skips a running job until its own kind's timeout has passed.
	JobTimeout time.Duration `env:"WORKER_JOB_TIMEOUT, default=1m"`
}

// ParseQueues parses WORKER_QUEUES ("sms=200,inbound=20") into River queue
// configs. It returns an error naming the bad entry.
func ParseQueues(s string) (map[string]river.QueueConfig, error) {
	queues := map[string]river.QueueConfig{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, n, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("WORKER_QUEUES entry %q is not queue=max_workers", part)
		}
		name = strings.TrimSpace(name)
		workers, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil || workers < 1 || workers > 10000 {
			return nil, fmt.Errorf("WORKER_QUEUES entry %q: max workers must be 1..10000", part)
		}
		if name == "" || len(name) > 127 {
			return nil, fmt.Errorf("WORKER_QUEUES entry %q: bad queue name", part)
		}
		if _, dup := queues[name]; dup {
			return nil, fmt.Errorf("WORKER_QUEUES names queue %q twice", name)
		}
		queues[name] = river.QueueConfig{MaxWorkers: workers}
	}
	if len(queues) == 0 {
		return nil, errors.New("WORKER_QUEUES names no queue")
	}
	return queues, nil
}

// NewTransport returns the HTTP transport vendor clients share.
func NewTransport(cfg Config) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	perHost := cfg.HTTPMaxIdleConnsPerHost
	if perHost <= 0 {
		perHost = 256
	}
	t.MaxIdleConns = perHost * 4
	t.MaxIdleConnsPerHost = perHost
	t.IdleConnTimeout = 90 * time.Second
	t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 5 * time.Second
	t.ResponseHeaderTimeout = 30 * time.Second
	return t
}

// NewClient returns a River client that works the configured queues with
// workers. Every job that fails for good becomes a dead letter (a trigger on
// river_job records it); this client makes sure unknown kinds and args that
// do not decode get there quickly instead of after River's 25 default
// attempts.
//
// periodic jobs are registered on every client (the leader inserts them);
// hooks run around every job (resilience.Registry.Hook: pauses read at job
// start).
func NewClient(cfg Config, pool *pgxpool.Pool, workers *river.Workers, periodic []*river.PeriodicJob, logger *slog.Logger, hooks ...rivertype.Hook) (*river.Client[pgx.Tx], error) {
	queues, err := ParseQueues(cfg.Queues)
	if err != nil {
		return nil, err
	}
	unknownAttempts := cfg.UnknownKindAttempts
	if unknownAttempts <= 0 {
		unknownAttempts = 3
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema:                      Schema,
		Queues:                      queues,
		Workers:                     workers,
		Logger:                      logging.Library(logger), // River's routine INFO lines at DEBUG
		FetchCooldown:               cfg.FetchCooldown,
		FetchPollInterval:           cfg.FetchPollInterval,
		PollOnly:                    cfg.PollOnly,
		CompletedJobRetentionPeriod: cfg.CompletedRetention,
		// Dead letters are copied out of River at the moment a job gives
		// up, so River may clean discarded and cancelled rows on its schedule.
		JobTimeout:           jobTimeout(cfg.JobTimeout),
		RescueStuckJobsAfter: rescueAfter(cfg.RescueAfter, jobTimeout(cfg.JobTimeout)),
		ErrorHandler:         &errorHandler{logger: logger, unknownKindAttempts: unknownAttempts},
		Middleware:           middleware(),
		Hooks:                hooks,
		PeriodicJobs:         periodic,
	})
	if err != nil {
		return nil, fmt.Errorf("error creating river client: %w", err)
	}
	return client, nil
}

// middleware is every job's middleware: ours, then tracing when it is on.
func middleware() []rivertype.Middleware {
	return append([]rivertype.Middleware{&jobMiddleware{}}, telemetry.RiverMiddleware()...)
}

// QueueNames lists the configured queues, sorted.
func QueueNames(cfg Config) []string {
	q, _ := ParseQueues(cfg.Queues)
	names := make([]string, 0, len(q))
	for n := range q {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// errorHandler routes failures no worker can decide about.
type errorHandler struct {
	logger              *slog.Logger
	unknownKindAttempts int
}

func (h *errorHandler) HandleError(ctx context.Context, job *rivertype.JobRow, err error) *river.ErrorHandlerResult {
	var unknown *rivertype.UnknownJobKindError
	if errors.As(err, &unknown) && job.Attempt >= h.unknownKindAttempts {
		h.logger.ErrorContext(ctx, "cancelling job of unknown kind into a dead letter",
			slog.Int64("job_id", job.ID), slog.String("job_kind", job.Kind))
		return &river.ErrorHandlerResult{SetCancelled: true}
	}
	return nil
}

func (h *errorHandler) HandlePanic(ctx context.Context, job *rivertype.JobRow, panicVal any, trace string) *river.ErrorHandlerResult {
	h.logger.ErrorContext(ctx, "job panicked", slog.Int64("job_id", job.ID), slog.String("job_kind", job.Kind))
	return nil
}

// jobMiddleware measures every job and turns args that do not decode into a
// dead letter at once: retrying cannot fix them.
type jobMiddleware struct{ river.MiddlewareDefaults }

func (m *jobMiddleware) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	start := time.Now()
	err := doInner(ctx)
	if isDecodeError(err) {
		_ = river.MetadataSet(ctx, "outcome_class", "undecodable_args")
		err = river.JobCancel(fmt.Errorf("job args do not decode: %w", err))
	}
	observeJob(job, err, time.Since(start))
	return err
}

// isDecodeError reports whether err is the bare error of decoding job args.
// River returns json.Unmarshal's error unwrapped, while every worker of ours
// wraps its errors, so only a bare JSON error comes from decoding.
func isDecodeError(err error) bool {
	switch err.(type) {
	case *json.SyntaxError, *json.UnmarshalTypeError:
		return true
	}
	return false
}

// Run starts the client, serves probes and metrics on cfg.Addr through
// serve, and on ctx's end stops fetching, waits up to cfg.ShutdownTimeout for
// running jobs, then cancels what remains. It returns nil on a clean stop.
func Run(ctx context.Context, cfg Config, client *river.Client[pgx.Tx], logger *slog.Logger) error {
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("error starting river client: %w", err)
	}
	logger.InfoContext(ctx, "worker started", slog.Any("queues", QueueNames(cfg)))
	<-ctx.Done()
	return Stop(cfg, client, logger)
}

// Stop stops the client gracefully: no new jobs are fetched, running jobs get
// cfg.ShutdownTimeout to finish, then are cancelled.
func Stop(cfg Config, client *river.Client[pgx.Tx], logger *slog.Logger) error {
	timeout := cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	logger.Info("worker stopping: waiting for running jobs", slog.Duration("deadline", timeout))
	soft, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := client.Stop(soft)
	if err == nil {
		logger.Info("worker stopped")
		return nil
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("error stopping river client: %w", err)
	}
	logger.Warn("running jobs did not finish in time; cancelling them")
	hard, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := client.StopAndCancel(hard); err != nil {
		return fmt.Errorf("error cancelling running jobs: %w", err)
	}
	return nil
}

func jobTimeout(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Minute
	}
	return d
}

// rescueAfter is at least the job timeout plus a margin: River requires it
// to be no shorter than JobTimeout.
func rescueAfter(d, jobTimeout time.Duration) time.Duration {
	return max(d, jobTimeout+10*time.Second)
}

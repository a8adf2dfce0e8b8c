package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-health/switchboard/internal/bench"
	"github.com/switchboard-health/switchboard/internal/logging"
	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/internal/twilio"
)

const benchSynopsis = `bench [flags]

Measures Switchboard against baselines measured in the same run, on a database of
its own (bench_<random>, created from the migrations on the server of DATABASE_URL or
--database-url and dropped at the end; app data is never touched):

  enqueue   app transactions (a domain row + switchboard.send_sms) vs the same
            transaction without the outbox call, at 1, 4 and 16 clients
  e2e       commit → sandbox Twilio → provider id stored, vs River's no-op worker on
            the same settings and raw single-row commits; a 100 ms provider
  scaleout  1, 2, 3 'switchboard worker' processes on one database, 100 ms provider:
            throughput and proof that nothing was sent twice
  soak      a steady rate for a minute: latency per 10 s window, dead tuples, job table
  settings  (not by default) River fetch settings and pool sizes compared

River client settings come from the WORKER_* variables (internal/worker defaults)
unless a flag overrides them. Progress goes to stderr, the report to stdout.
`

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", benchSynopsis, stdout)
	var (
		dbURL       = fs.String("database-url", "", "server to create the bench database on (default $DATABASE_URL)")
		scenarios   = fs.String("scenarios", strings.Join(bench.DefaultScenarios, ","), "comma-separated scenarios, or all: "+strings.Join(bench.AllScenarios, ","))
		asJSON      = fs.Bool("json", false, "print the report as JSON")
		keep        = fs.Bool("keep-db", false, "keep the bench database instead of dropping it")
		verbose     = fs.Bool("v", false, "log River's and the workers' info lines to stderr (default: warnings)")
		workers     = fs.Int("workers", 100, "sms queue MaxWorkers of the in-process worker (e2e, soak)")
		cooldown    = fs.Duration("fetch-cooldown", 0, "River FetchCooldown (default WORKER_FETCH_COOLDOWN)")
		poll        = fs.Duration("poll-interval", 0, "River FetchPollInterval (default WORKER_FETCH_POLL_INTERVAL)")
		poolSize    = fs.Int("pool", 0, "worker pgx pool MaxConns (default WORKER_DB_MAX_CONNS)")
		clients     = fs.String("enqueue-clients", "1,4,16", "enqueue: concurrent app sessions")
		slice       = fs.Duration("enqueue-slice", time.Second, "enqueue: one case's turn")
		rounds      = fs.Int("enqueue-rounds", 4, "enqueue: turns per case")
		ablations   = fs.Bool("enqueue-ablations", true, "enqueue: the breakdown cases at the largest client count")
		rate        = fs.Int("rate", 500, "e2e: offered load of the latency cases, messages per second")
		latencyDur  = fs.Duration("latency-duration", 10*time.Second, "e2e: length of each latency case")
		noopJobs    = fs.Int("noop-jobs", 30000, "e2e: pre-inserted no-op jobs")
		messages    = fs.Int("messages", 10000, "e2e: pre-inserted messages for the zero-latency provider")
		wakeups     = fs.Bool("wakeup-cases", true, "e2e: also measure the wake-up designs not chosen (poll only, NOTIFY every transaction)")
		wakeupRate  = fs.Int("wakeup-rate", 200, "e2e: offered load of the wake-up design cases, messages per second")
		unshared    = fs.Bool("unshared", true, "e2e: also measure the send path with SMS_BATCH_SIZE=1 (every job its own transactions)")
		provLatency = fs.Duration("provider-latency", 100*time.Millisecond, "e2e, scaleout: the slow provider's latency")
		slowWorkers = fs.String("slow-workers", "25,50", "e2e: sms MaxWorkers of each slow-provider case")
		slowMsgs    = fs.Int("slow-messages", 0, "e2e: messages sent through the slow provider (default: about 8 s of work)")
		processes   = fs.String("processes", "1,2,3", "scaleout: worker process counts")
		procWorkers = fs.Int("process-workers", 16, "scaleout: sms MaxWorkers of each worker process (small enough that 3 processes do not saturate the database)")
		scaleDur    = fs.Duration("scaleout-duration", 8*time.Second, "scaleout: about how long each run works")
		soakDur     = fs.Duration("soak", 60*time.Second, "soak: length (at least a minute makes the target meaningful)")
		soakRate    = fs.Int("soak-rate", 300, "soak: steady rate, messages per second")
		binary      = fs.String("worker-binary", "", "scaleout: switchboard binary to run as workers (default: this executable)")
		cpuProfile  = fs.String("cpuprofile", "", "write a Go CPU profile of this process (the in-process workers) to this file")
	)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"bench takes no arguments, only flags"}
	}
	var cfg workerConfig
	if err := load(ctx, &cfg); err != nil {
		return err
	}
	if *dbURL == "" {
		*dbURL = cfg.Base.DatabaseURL
	}
	if *dbURL == "" {
		return usageError{"DATABASE_URL is not set and --database-url is not given"}
	}
	level := "warn"
	if *verbose {
		level = "info"
	}
	logger, err := logging.New(logging.Config{Level: level, Format: cfg.Base.Log.Format}, stderr)
	if err != nil {
		return err
	}

	bc := bench.Config{
		DatabaseURL:  *dbURL,
		KeepDatabase: *keep,
		Worker:       cfg.Worker,
		Workers:      *workers,
		Enqueue:      bench.EnqueueConfig{Slice: *slice, Rounds: *rounds, Ablations: *ablations},
		E2E: bench.E2EConfig{
			NoopJobs: *noopJobs, Messages: *messages, Rate: *rate, LatencyDuration: *latencyDur, WakeupCases: *wakeups, WakeupRate: *wakeupRate, Unshared: *unshared,
			ProviderLatency: *provLatency, SlowMessages: *slowMsgs,
		},
		ScaleOut:     bench.ScaleOutConfig{WorkersPerProcess: *procWorkers, ProviderLatency: *provLatency, Duration: *scaleDur},
		Soak:         bench.SoakConfig{Duration: *soakDur, Rate: *soakRate},
		NewSMSWorker: benchSMSWorker(cfg, logger),
		WorkerBinary: *binary,
		Logger:       logger,
		Progress:     stderr,
	}
	if *cooldown > 0 {
		bc.Worker.FetchCooldown = *cooldown
	}
	if *poll > 0 {
		bc.Worker.FetchPollInterval = *poll
	}
	if *poolSize > 0 {
		bc.Worker.DBMaxConns = int32(*poolSize)
	}
	if bc.Enqueue.Clients, err = intList("enqueue-clients", *clients); err != nil {
		return err
	}
	if bc.E2E.SlowWorkers, err = intList("slow-workers", *slowWorkers); err != nil {
		return err
	}
	if bc.ScaleOut.Processes, err = intList("processes", *processes); err != nil {
		return err
	}
	if *scenarios == "all" {
		bc.Scenarios = bench.AllScenarios
	} else {
		bc.Scenarios = strings.Split(*scenarios, ",")
	}
	if bc.WorkerBinary == "" {
		if bc.WorkerBinary, err = os.Executable(); err != nil {
			return fmt.Errorf("error finding this executable: %w", err)
		}
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	report, err := bench.Run(ctx, bc)
	if report != nil && len(report.Results) > 0 {
		var werr error
		if *asJSON {
			werr = report.WriteJSON(stdout)
		} else {
			werr = report.WriteTable(stdout)
		}
		err = errors.Join(err, werr)
	}
	if err != nil {
		if strings.HasPrefix(err.Error(), "unknown scenario") {
			return usageError{err.Error()}
		}
		return fmt.Errorf("error running the bench: %w", err)
	}
	return nil
}

// benchSMSWorker wires the production sms worker (newWorker) for the bench:
// the River settings it measures, the bench's sandbox Twilio, and the
// Twilio bulkhead sized to the queue's workers unless
// DEST_TWILIO_MAX_CONCURRENT says otherwise.
func benchSMSWorker(base workerConfig, logger *slog.Logger) bench.NewSMSWorker {
	concurrencyVar := resilience.EnvPrefix(twilio.Provider) + "MAX_CONCURRENT"
	_, userSet := os.LookupEnv(concurrencyVar)
	return func(ctx context.Context, pool *pgxpool.Pool, c bench.SMSWorkerConfig) (*bench.SMSWorker, error) {
		cfg := base
		cfg.Worker = c.Worker
		cfg.Twilio.AccountSID = c.Twilio.AccountSID
		cfg.Twilio.AuthToken = c.Twilio.AuthToken
		cfg.Twilio.FromNumber = c.Twilio.FromNumber
		cfg.Twilio.MessagingServiceSID = ""
		cfg.Twilio.APIBaseURL = c.Twilio.APIBaseURL
		cfg.SMS.PublicBaseURL = c.PublicBaseURL
		if c.BatchSize > 0 {
			cfg.SMS.BatchSize = c.BatchSize
		}
		if !userSet && c.MaxConcurrent > 0 {
			if err := os.Setenv(concurrencyVar, strconv.Itoa(c.MaxConcurrent)); err != nil {
				return nil, err
			}
		}
		w, err := newWorker(ctx, cfg, pool, logger)
		if err != nil {
			return nil, err
		}
		return &bench.SMSWorker{
			Client:     w.client,
			Background: func(ctx context.Context) { w.registry.Run(ctx, 2*time.Second, logger) },
		}, nil
	}
}

// intList parses "1,4,16".
func intList(name, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, usageError{fmt.Sprintf("--%s: %q is not a list of positive numbers", name, s)}
		}
		out = append(out, n)
	}
	return out, nil
}

package main

import (
	"context"
	"errors"
	"fmt"

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

// benchCmd is `switchboard bench`.
type benchCmd struct {
	DatabaseURL string        `name:"database-url" help:"Server to create the bench database on (default $DATABASE_URL)."`
	Scenarios   string        `default:"${bench_scenarios}" help:"Comma-separated scenarios, or all: ${bench_all}."`
	JSON        bool          `name:"json" help:"Print the report as JSON."`
	KeepDB      bool          `name:"keep-db" help:"Keep the bench database instead of dropping it."`
	Verbose     bool          `short:"v" help:"Log River's and the workers' info lines to stderr (default: warnings)."`
	Workers     int           `default:"100" help:"sms queue MaxWorkers of the in-process worker (e2e, soak)."`
	Cooldown    time.Duration `name:"fetch-cooldown" help:"River FetchCooldown (default WORKER_FETCH_COOLDOWN)."`
	Poll        time.Duration `name:"poll-interval" help:"River FetchPollInterval (default WORKER_FETCH_POLL_INTERVAL)."`
	Pool        int           `help:"Worker pgx pool MaxConns (default WORKER_DB_MAX_CONNS)."`
	Clients     string        `name:"enqueue-clients" default:"1,4,16" help:"enqueue: concurrent app sessions."`
	Slice       time.Duration `name:"enqueue-slice" default:"1s" help:"enqueue: one case's turn."`
	Rounds      int           `name:"enqueue-rounds" default:"4" help:"enqueue: turns per case."`
	Ablations   bool          `name:"enqueue-ablations" default:"true" negatable:"" help:"enqueue: the breakdown cases at the largest client count."`
	Rate        int           `default:"500" help:"e2e: offered load of the latency cases, messages per second."`
	LatencyDur  time.Duration `name:"latency-duration" default:"10s" help:"e2e: length of each latency case."`
	NoopJobs    int           `name:"noop-jobs" default:"30000" help:"e2e: pre-inserted no-op jobs."`
	Messages    int           `default:"10000" help:"e2e: pre-inserted messages for the zero-latency provider."`
	Wakeups     bool          `name:"wakeup-cases" default:"true" negatable:"" help:"e2e: also measure the wake-up designs not chosen (poll only, NOTIFY every transaction)."`
	WakeupRate  int           `name:"wakeup-rate" default:"200" help:"e2e: offered load of the wake-up design cases, messages per second."`
	Unshared    bool          `default:"true" negatable:"" help:"e2e: also measure the send path with SMS_BATCH_SIZE=1 (every job its own transactions)."`
	ProvLatency time.Duration `name:"provider-latency" default:"100ms" help:"e2e, scaleout: the slow provider's latency."`
	SlowWorkers string        `name:"slow-workers" default:"25,50" help:"e2e: sms MaxWorkers of each slow-provider case."`
	SlowMsgs    int           `name:"slow-messages" help:"e2e: messages sent through the slow provider (default: about 8 s of work)."`
	Processes   string        `default:"1,2,3" help:"scaleout: worker process counts."`
	ProcWorkers int           `name:"process-workers" default:"16" help:"scaleout: sms MaxWorkers of each worker process (small enough that 3 processes do not saturate the database)."`
	ScaleDur    time.Duration `name:"scaleout-duration" default:"8s" help:"scaleout: about how long each run works."`
	SoakDur     time.Duration `name:"soak" default:"60s" help:"soak: length (at least a minute makes the target meaningful)."`
	SoakRate    int           `name:"soak-rate" default:"300" help:"soak: steady rate, messages per second."`
	Binary      string        `name:"worker-binary" help:"scaleout: switchboard binary to run as workers (default: this executable)."`
	CPUProfile  string        `name:"cpuprofile" help:"Write a Go CPU profile of this process (the in-process workers) to this file."`
}

func (benchCmd) Help() string {
	return `Measures Switchboard against baselines measured in the same run, on a database of
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
unless a flag overrides them. Progress goes to stderr, the report to stdout.`
}

func (c *benchCmd) Run(e *env) error {
	ctx, stdout, stderr := e.ctx, e.stdout, e.stderr
	var (
		dbURL       = &c.DatabaseURL
		scenarios   = &c.Scenarios
		asJSON      = &c.JSON
		keep        = &c.KeepDB
		verbose     = &c.Verbose
		workers     = &c.Workers
		cooldown    = &c.Cooldown
		poll        = &c.Poll
		poolSize    = &c.Pool
		clients     = &c.Clients
		slice       = &c.Slice
		rounds      = &c.Rounds
		ablations   = &c.Ablations
		rate        = &c.Rate
		latencyDur  = &c.LatencyDur
		noopJobs    = &c.NoopJobs
		messages    = &c.Messages
		wakeups     = &c.Wakeups
		wakeupRate  = &c.WakeupRate
		unshared    = &c.Unshared
		provLatency = &c.ProvLatency
		slowWorkers = &c.SlowWorkers
		slowMsgs    = &c.SlowMsgs
		processes   = &c.Processes
		procWorkers = &c.ProcWorkers
		scaleDur    = &c.ScaleDur
		soakDur     = &c.SoakDur
		soakRate    = &c.SoakRate
		binary      = &c.Binary
		cpuProfile  = &c.CPUProfile
	)
	var cfg workerConfig
	if err := load(ctx, &cfg); err != nil {
		return err
	}
	if *dbURL == "" {
		*dbURL = cfg.Base.DatabaseURL
	}
	if *dbURL == "" {
		return usageError{msg: "DATABASE_URL is not set and --database-url is not given"}
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
			return usageError{msg: err.Error()}
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
			return nil, usageError{msg: fmt.Sprintf("--%s: %q is not a list of positive numbers", name, s)}
		}
		out = append(out, n)
	}
	return out, nil
}

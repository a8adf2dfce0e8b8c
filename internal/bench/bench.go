package bench

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	neturl "net/url"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/internal/database"
	"github.com/switchboard-health/switchboard/internal/worker"
)

// Scenario names, in the order a run takes them.
const (
	ScenarioEnqueue  = "enqueue"
	ScenarioE2E      = "e2e"
	ScenarioScaleOut = "scaleout"
	ScenarioSoak     = "soak"
	ScenarioSettings = "settings"
)

// AllScenarios lists every scenario in run order. DefaultScenarios leaves
// out the settings sweep, which only informs the choice of defaults.
var (
	AllScenarios     = []string{ScenarioEnqueue, ScenarioE2E, ScenarioScaleOut, ScenarioSoak, ScenarioSettings}
	DefaultScenarios = []string{ScenarioEnqueue, ScenarioE2E, ScenarioScaleOut, ScenarioSoak}
)

// Config is one bench run.
type Config struct {
	// DatabaseURL names the server; the bench connects to its database only
	// to create and drop its own, bench_<random>.
	DatabaseURL string
	Scenarios   []string
	// KeepDatabase leaves the bench database in place for inspection.
	KeepDatabase bool

	Enqueue  EnqueueConfig
	E2E      E2EConfig
	ScaleOut ScaleOutConfig
	Soak     SoakConfig

	// Worker is the River client configuration under test (WORKER_* and
	// their defaults); the bench sets Queues itself.
	Worker worker.Config
	// Workers is the sms queue's MaxWorkers in the in-process cases.
	Workers int

	// NewSMSWorker wires the production sms worker (cmd/switchboard's
	// newWorker). Required by e2e and soak.
	NewSMSWorker NewSMSWorker
	// WorkerBinary is the switchboard binary run as `switchboard worker`
	// processes by scaleout.
	WorkerBinary string

	// Logger receives River's and the workers' logs (warnings and up are
	// useful); Progress receives one line per step. Either may be nil.
	Logger   *slog.Logger
	Progress io.Writer
}

// Settings are the River client settings a run used.
type Settings struct {
	Workers           int      `json:"sms_max_workers"`
	FetchCooldown     Duration `json:"fetch_cooldown"`
	FetchPollInterval Duration `json:"fetch_poll_interval"`
	PoolSize          int32    `json:"pool_max_conns"`
	HTTPIdlePerHost   int      `json:"http_max_idle_conns_per_host"`
}

func (d Duration) String() string { return time.Duration(d).String() }

// SMSWorker is a wired sms worker: the River client of `switchboard worker`
// and what runs beside it.
type SMSWorker struct {
	Client *river.Client[pgx.Tx]
	// Background runs until ctx ends (the destination health flusher).
	Background func(ctx context.Context)
}

// SMSWorkerConfig is what the bench changes in the production wiring: the
// River client settings and where Twilio is.
type SMSWorkerConfig struct {
	Worker worker.Config
	// MaxConcurrent is the Twilio destination's bulkhead
	// (DEST_TWILIO_MAX_CONCURRENT): the bench sets it to the queue's
	// workers so that MaxWorkers alone bounds concurrency.
	MaxConcurrent int
	Twilio        TwilioConfig
	// PublicBaseURL makes every send carry a status callback URL with the
	// message id, which is how the sandbox side tells messages apart.
	PublicBaseURL string
	// BatchSize overrides SMS_BATCH_SIZE when positive.
	BatchSize int
}

// TwilioConfig points the Twilio adapter at the bench's sandbox.
type TwilioConfig struct {
	AccountSID, AuthToken, FromNumber, APIBaseURL string
}

// NewSMSWorker builds the production sms worker on pool.
type NewSMSWorker func(ctx context.Context, pool *pgxpool.Pool, cfg SMSWorkerConfig) (*SMSWorker, error)

//go:embed schema.sql
var schemaSQL string

// env is what every scenario shares.
type env struct {
	cfg      Config
	url      string // the bench database
	admin    *pgxpool.Pool
	logger   *slog.Logger
	progress io.Writer
	runID    string
	report   *Report
}

func (e *env) logf(format string, args ...any) {
	if e.progress != nil {
		fmt.Fprintf(e.progress, "bench: "+format+"\n", args...)
	}
}

// Run creates the bench database, runs the scenarios and drops it. The
// report holds whatever was measured, also when an error ends the run.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.DatabaseURL == "" {
		return nil, errors.New("a database URL is required")
	}
	if len(cfg.Scenarios) == 0 {
		cfg.Scenarios = DefaultScenarios
	}
	for _, s := range cfg.Scenarios {
		if !slices.Contains(AllScenarios, s) {
			return nil, fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(AllScenarios, ", "))
		}
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 100
	}
	if cfg.Worker.DBMaxConns <= 0 {
		cfg.Worker.DBMaxConns = 50
	}
	cfg.Enqueue.defaults()
	cfg.E2E.defaults()
	cfg.ScaleOut.defaults()
	cfg.Soak.defaults()
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := "bench_" + hex.EncodeToString(rnd[:])
	report := &Report{
		StartedAt: time.Now(),
		CPUs:      runtime.NumCPU(),
		Database:  name,
		Settings: Settings{
			Workers:           cfg.Workers,
			FetchCooldown:     Duration(cfg.Worker.FetchCooldown),
			FetchPollInterval: Duration(cfg.Worker.FetchPollInterval),
			PoolSize:          cfg.Worker.DBMaxConns,
			HTTPIdlePerHost:   cfg.Worker.HTTPMaxIdleConnsPerHost,
		},
	}
	defer func() { report.Duration = Duration(time.Since(report.StartedAt)) }()

	admin, err := database.Open(ctx, database.Config{URL: cfg.DatabaseURL, MaxConns: 4})
	if err != nil {
		return report, err
	}
	defer admin.Close()
	// autovacuum_naptime decides how soon dead job tuples go (the soak).
	if err := admin.QueryRow(ctx, "SELECT split_part(version(), ' on ', 1) || ', autovacuum_naptime ' || current_setting('autovacuum_naptime')").Scan(&report.Server); err != nil {
		return report, fmt.Errorf("error reading server version: %w", err)
	}
	url, err := withDatabase(cfg.DatabaseURL, name)
	if err != nil {
		return report, err
	}
	e := &env{cfg: cfg, url: url, admin: admin, logger: logger, progress: cfg.Progress, runID: hex.EncodeToString(rnd[:]), report: report}

	e.logf("creating database %s and migrating it", name)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return report, fmt.Errorf("error creating the bench database: %w", err)
	}
	defer func() {
		if cfg.KeepDatabase {
			e.logf("kept database %s", name)
			return
		}
		dropCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if _, err := admin.Exec(dropCtx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			e.logf("error dropping %s: %v", name, err)
		}
	}()
	if _, err := database.Migrate(ctx, database.Config{URL: url}, database.Up, logger); err != nil {
		return report, err
	}
	if err := e.exec(ctx, schemaSQL); err != nil {
		return report, fmt.Errorf("error creating the bench schema: %w", err)
	}

	for _, s := range AllScenarios {
		if !slices.Contains(cfg.Scenarios, s) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return report, err
		}
		if err := e.reset(ctx); err != nil {
			return report, err
		}
		var err error
		switch s {
		case ScenarioEnqueue:
			err = runEnqueue(ctx, e)
		case ScenarioE2E:
			err = runE2E(ctx, e)
		case ScenarioScaleOut:
			err = runScaleOut(ctx, e)
		case ScenarioSoak:
			err = runSoak(ctx, e)
		case ScenarioSettings:
			err = runSettings(ctx, e)
		}
		if err != nil {
			return report, fmt.Errorf("%s: %w", s, err)
		}
	}
	return report, nil
}

// exec runs sql on a short-lived connection to the bench database.
func (e *env) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, e.url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// pool opens a pool on the bench database; params are session settings.
func (e *env) pool(ctx context.Context, maxConns int32, params map[string]string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(e.url)
	if err != nil {
		return nil, err
	}
	pc.MaxConns = maxConns
	pc.MinConns = maxConns
	for k, v := range params {
		pc.ConnConfig.RuntimeParams[k] = v
	}
	p, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	if err := p.Ping(ctx); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// reset empties what a scenario leaves behind, so that each starts from the
// migrated state, vacuums, and checkpoints so that one scenario's dirty
// pages are not written during the next (CHECKPOINT needs pg_checkpoint or
// a superuser; without it the reset goes on).
func (e *env) reset(ctx context.Context) error {
	for _, sql := range []string{
		`TRUNCATE switchboard.messages, switchboard.message_attempts, switchboard.message_events,
			switchboard.river_job, switchboard.events, switchboard.dead_letters, bench.domain`,
		`DELETE FROM switchboard.river_leader`,
		`DELETE FROM switchboard.river_queue`,
		`DELETE FROM switchboard.destination_health`,
		`VACUUM ANALYZE switchboard.messages, switchboard.river_job, bench.domain`,
	} {
		if err := e.exec(ctx, sql); err != nil {
			return fmt.Errorf("error resetting the bench database: %w", err)
		}
	}
	_ = e.exec(ctx, "CHECKPOINT")
	return nil
}

// withDatabase returns url naming database name instead.
func withDatabase(raw, name string) (string, error) {
	if strings.HasPrefix(raw, "postgres://") || strings.HasPrefix(raw, "postgresql://") {
		u, err := neturl.Parse(raw)
		if err != nil {
			return "", fmt.Errorf("the database URL does not parse: %w", err)
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	return "", errors.New("the database URL must be a postgres:// URL")
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"golang.org/x/sync/errgroup"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/fhir"
	"github.com/switchboard-health/switchboard/internal/httpserver"
	"github.com/switchboard-health/switchboard/internal/maintenance"
	"github.com/switchboard-health/switchboard/internal/ratelimit"
	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/internal/secrets"
	"github.com/switchboard-health/switchboard/internal/sms"
	"github.com/switchboard-health/switchboard/internal/twilio"
	"github.com/switchboard-health/switchboard/internal/worker"
	"github.com/switchboard-health/switchboard/jobs"
)

// workerConfig is what `switchboard worker` reads.
type workerConfig struct {
	Base        base
	Worker      worker.Config
	SMS         sms.Config
	Inbound     sms.InboundConfig
	Reconcile   sms.ReconcileConfig
	Twilio      twilio.Config
	Maintenance maintenance.Config
	FHIR        fhir.Config
	// TokenKeys encrypts tokens and private keys at rest
	// (kid:base64key[,…]; the first encrypts).
	TokenKeys string `env:"TOKEN_ENCRYPTION_KEYS"`
}

func runWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("worker", "worker\n\nWorks the queues in WORKER_QUEUES and serves /healthz, /readyz and /metrics on WORKER_ADDR.\nSIGTERM stops fetching and gives running jobs WORKER_SHUTDOWN_TIMEOUT to finish.", stdout)
	if err := parse(fs, args); err != nil {
		return err
	}
	var cfg workerConfig
	if err := load(ctx, &cfg); err != nil {
		return err
	}
	logger, err := newLogger(cfg.Base.Log, stderr)
	if err != nil {
		return err
	}
	pool, err := openPool(ctx, cfg.Base, cfg.Worker.DBMaxConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	w, err := newWorker(ctx, cfg, pool, logger)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	w.start(g, gctx, cfg, pool, logger)
	return g.Wait()
}

// workerParts is a wired River client and what runs beside it.
type workerParts struct {
	client   *river.Client[pgx.Tx]
	registry *resilience.Registry
}

// start runs the client, the health flusher and the probe server in g.
func (w *workerParts) start(g *errgroup.Group, ctx context.Context, cfg workerConfig, pool *pgxpool.Pool, logger *slog.Logger) {
	g.Go(func() error { return worker.Run(ctx, cfg.Worker, w.client, logger) })
	g.Go(func() error { w.registry.Run(ctx, 2*time.Second, logger); return nil })
	g.Go(func() error { return httpserver.Serve(ctx, cfg.Worker.Addr, workerProbes(pool, w.client), logger) })
}

// newWorker wires the vendors, their resilience policies and the workers
// into a River client.
func newWorker(ctx context.Context, cfg workerConfig, pool *pgxpool.Pool, logger *slog.Logger) (*workerParts, error) {
	if err := cfg.Twilio.Validate(); err != nil {
		return nil, usageError{err.Error()}
	}
	kinds, err := loadKinds(ctx, pool)
	if err != nil {
		return nil, err
	}
	transport := worker.NewTransport(cfg.Worker)
	tw, err := twilio.New(cfg.Twilio, transport)
	if err != nil {
		return nil, fmt.Errorf("error creating twilio client: %w", err)
	}
	registry := resilience.New(resilience.DBStore{Pool: pool})
	twSettings, err := resilience.LoadSettings(ctx, twilio.Provider)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	twDest := registry.Register(twilio.Provider, twSettings, sms.Outcome)

	workers := river.NewWorkers()
	limiter := ratelimit.New(pool)
	twProvider := sms.Provider{Sender: tw, Destination: twDest, Probe: tw.Probe}
	if twSettings.RateLimit != "" {
		lim, err := ratelimit.ParseLimit(twSettings.RateLimit)
		if err != nil {
			return nil, usageError{resilience.EnvPrefix(twilio.Provider) + "RATE_LIMIT: " + err.Error()}
		}
		// One limit per sender: a long code sends about one segment a second.
		sender := cfg.Twilio.FromNumber
		if sender == "" {
			sender = cfg.Twilio.MessagingServiceSID
		}
		twProvider.Slots = limiter.Slots(twilio.Provider+":"+sender, lim)
	}
	providers := []sms.Provider{twProvider}
	if err := river.AddWorkerSafely(workers, sms.NewSendWorker(cfg.SMS, pool, sms.SendDeps{
		Providers:        providers,
		UnavailableLimit: kinds[jobs.KindSMSSend],
	}, logger)); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, sms.NewReconcileWorker(cfg.Reconcile, pool, providers, logger)); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, sms.NewWebhookWorker(pool, map[string]sms.ReportParser{twilio.Provider: tw}, cfg.Inbound, logger)); err != nil {
		return nil, err
	}
	probes := map[string]func(context.Context) error{twilio.Provider: tw.Probe}
	if err := river.AddWorkerSafely(workers, resilience.NewProbeWorker(registry, probes, cfg.Maintenance.ProbeIdle, logger)); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, maintenance.New(cfg.Maintenance, pool, limiter, logger)); err != nil {
		return nil, err
	}
	var keyring *secrets.Keyring
	if cfg.TokenKeys != "" {
		if keyring, err = secrets.Parse(cfg.TokenKeys); err != nil {
			return nil, usageError{err.Error()}
		}
	}
	fhirPeriodic, err := fhir.Register(ctx, workers, fhir.Deps{
		Pool: pool, Registry: registry, Limiter: limiter, Keys: keyring, Logger: logger, Config: cfg.FHIR,
		HTTPClient: &http.Client{Transport: transport},
	})
	if err != nil {
		return nil, fmt.Errorf("error wiring fhir: %w", err)
	}
	periodic := []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(cfg.Maintenance.ProbeInterval),
			func() (river.JobArgs, *river.InsertOpts) { return jobs.DestinationProbeArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true}),
		river.NewPeriodicJob(river.PeriodicInterval(cfg.Reconcile.Interval),
			func() (river.JobArgs, *river.InsertOpts) { return jobs.SMSReconcileArgs{}, nil }, nil),
		river.NewPeriodicJob(river.PeriodicInterval(cfg.Maintenance.Interval),
			func() (river.JobArgs, *river.InsertOpts) { return jobs.MaintenanceArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true}),
	}
	periodic = append(periodic, fhirPeriodic...)
	client, err := worker.NewClient(cfg.Worker, pool, workers, periodic, logger)
	if err != nil {
		return nil, err
	}
	return &workerParts{client: client, registry: registry}, nil
}

// loadKinds reads each kind's unavailable limit from switchboard.job_kinds,
// the one source of truth for per-kind settings.
func loadKinds(ctx context.Context, pool *pgxpool.Pool) (map[string]time.Duration, error) {
	rows, err := db.New().JobKindList(ctx, pool)
	if err != nil {
		return nil, fmt.Errorf("error reading job kinds (is the database migrated?): %w", err)
	}
	out := make(map[string]time.Duration, len(rows))
	for _, k := range rows {
		out[k.Kind] = intervalDuration(k.UnavailableLimit)
	}
	return out, nil
}

func intervalDuration(iv pgtype.Interval) time.Duration {
	if !iv.Valid {
		return 0
	}
	return time.Duration(iv.Microseconds)*time.Microsecond +
		time.Duration(iv.Days)*24*time.Hour +
		time.Duration(iv.Months)*30*24*time.Hour
}

// workerProbes serves the worker's probes; ready also needs the River client
// to be running.
func workerProbes(pool *pgxpool.Pool, client *river.Client[pgx.Tx]) http.Handler {
	return httpserver.Probes(pool, func(ctx context.Context) error {
		select {
		case <-client.Stopped():
			return fmt.Errorf("river client stopped")
		default:
			return nil
		}
	})
}

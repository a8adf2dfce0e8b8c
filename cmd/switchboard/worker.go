package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"golang.org/x/sync/errgroup"

	"github.com/switchboard-health/switchboard/internal/database"
	"github.com/switchboard-health/switchboard/internal/fhir"
	"github.com/switchboard-health/switchboard/internal/googlehealth"
	"github.com/switchboard-health/switchboard/internal/httpserver"
	"github.com/switchboard-health/switchboard/internal/maintenance"
	"github.com/switchboard-health/switchboard/internal/ratelimit"
	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/internal/secrets"
	"github.com/switchboard-health/switchboard/internal/sms"
	"github.com/switchboard-health/switchboard/internal/telemetry"
	"github.com/switchboard-health/switchboard/internal/telnyx"
	"github.com/switchboard-health/switchboard/internal/twilio"
	"github.com/switchboard-health/switchboard/internal/wearables"
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
	Telnyx      telnyx.Config
	Wearables   wearables.Config
	// SMSProviders is the providers' order of preference.
	SMSProviders string `env:"SMS_PROVIDERS, default=twilio"`
	// TokenKeys encrypts tokens and private keys at rest
	// (kid:base64key[,…]; the first encrypts).
	TokenKeys string `env:"TOKEN_ENCRYPTION_KEYS"`
}

// workerCmd is `switchboard worker`.
type workerCmd struct{}

func (workerCmd) Help() string {
	return `Works the queues in WORKER_QUEUES and serves /healthz and /readyz on
WORKER_ADDR, /metrics on WORKER_METRICS_ADDR (loopback by default). SIGTERM
stops fetching and gives running jobs WORKER_SHUTDOWN_TIMEOUT to finish.`
}

func (workerCmd) Run(e *env) error {
	ctx, stderr := e.ctx, e.stderr
	var cfg workerConfig
	if err := load(ctx, &cfg); err != nil {
		return err
	}
	logger, err := newLogger(cfg.Base.Log, stderr)
	if err != nil {
		return err
	}
	stopTracing, err := startTracing(ctx, "switchboard-worker")
	if err != nil {
		return err
	}
	defer stopTracing()
	pool, err := openServicePool(ctx, cfg.Base, cfg.Worker.DBMaxConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	// The server may go away again just after Open reached it (a restart, a
	// failover): wiring reads it and River's Start pings it, and either
	// failing that way is waited for as Open waits, from scratch, instead of
	// ending the process. Start is given a context that outlives ctx, as
	// worker.Run's own (a no-op) Start would: River stops on Stop, not on
	// cancellation.
	var w *workerParts
	err = database.WhileUnavailable(ctx, serviceStartWait, func(ctx context.Context) error {
		var err error
		if w, err = newWorker(ctx, cfg, pool, logger); err != nil {
			return err
		}
		return w.client.Start(context.WithoutCancel(ctx))
	})
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
	g.Go(func() error {
		return httpserver.Serve(ctx, cfg.Worker.MetricsAddr, httpserver.Metrics(cfg.Worker.MetricsToken), logger)
	})
}

// newWorker wires the vendors, their resilience policies and the workers
// into a River client.
func newWorker(ctx context.Context, cfg workerConfig, pool *pgxpool.Pool, logger *slog.Logger) (*workerParts, error) {
	kinds, err := worker.UnavailableLimits(ctx, pool)
	if err != nil {
		return nil, err
	}
	var keyring *secrets.Keyring
	if cfg.TokenKeys != "" {
		if keyring, err = secrets.Parse(cfg.TokenKeys); err != nil {
			return nil, usageError{msg: err.Error()}
		}
	}
	var transport http.RoundTripper = worker.NewTransport(cfg.Worker)
	if telemetry.Enabled() {
		transport = telemetry.Transport(transport)
	}
	registry := resilience.New(resilience.DBStore{Pool: pool})
	limiter := ratelimit.New(pool)

	providers, err := smsProviders(ctx, cfg, transport, registry, limiter, logger)
	if err != nil {
		return nil, err
	}
	parsers := map[string]sms.ReportParser{}
	probes := map[string]func(context.Context) error{}
	for _, p := range providers {
		if rp, ok := p.Sender.(sms.ReportParser); ok {
			parsers[p.Name()] = rp
		}
		if p.Probe != nil {
			probes[p.Name()] = p.Probe
		}
	}

	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, sms.NewSendWorker(cfg.SMS, pool, sms.SendDeps{
		Providers:        providers,
		UnavailableLimit: kinds[jobs.KindSMSSend],
	}, logger)); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, sms.NewReconcileWorker(cfg.Reconcile, pool, providers, logger)); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, sms.NewWebhookWorker(pool, parsers, cfg.Inbound, logger)); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, maintenance.New(cfg.Maintenance, pool, limiter, logger)); err != nil {
		return nil, err
	}
	fhirPeriodic, err := fhir.Register(ctx, workers, fhir.Deps{
		Pool: pool, Registry: registry, Limiter: limiter, Keys: keyring, Logger: logger, Config: cfg.FHIR,
		HTTPClient: &http.Client{Transport: transport}, UnavailableLimits: kinds,
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

	// Wearables keep OAuth tokens, which are only ever stored encrypted:
	// without TOKEN_ENCRYPTION_KEYS they stay off.
	if keyring != nil {
		wdeps := wearables.Deps{Pool: pool, Registry: registry, Limiter: limiter, Keys: keyring, Logger: logger, UnavailableLimits: kinds,
			Config: cfg.Wearables, HTTPClient: &http.Client{Transport: transport, Timeout: 30 * time.Second}}
		wPeriodic, err := wearables.Register(ctx, workers, wdeps)
		if err != nil {
			return nil, fmt.Errorf("error wiring wearables: %w", err)
		}
		periodic = append(periodic, wPeriodic...)
		probes[googlehealth.Provider] = wearables.Probe(wdeps)
	} else {
		logger.WarnContext(ctx, "wearables disabled: TOKEN_ENCRYPTION_KEYS is not set")
	}
	if err := river.AddWorkerSafely(workers, resilience.NewProbeWorker(registry, probes, cfg.Maintenance.ProbeIdle, logger)); err != nil {
		return nil, err
	}

	cfg.Worker.PollOnly = cfg.Base.pollOnly()
	client, err := worker.NewClient(cfg.Worker, pool, workers, periodic, logger, registry.Hook())
	if err != nil {
		return nil, err
	}
	return &workerParts{client: client, registry: registry}, nil
}

// smsProviders builds the SMS providers named in SMS_PROVIDERS, in order,
// each behind its destination's policies and its sender's rate limit.
// A provider whose credentials are missing or placeholders (the shipped
// deploy/.env.example) is registered unconfigured: its messages hold, and
// the worker runs instead of exiting into a restart loop.
func smsProviders(ctx context.Context, cfg workerConfig, transport http.RoundTripper, registry *resilience.Registry, limiter *ratelimit.Limiter, logger *slog.Logger) ([]sms.Provider, error) {
	unconfigured := func(name string, problem error) sms.Provider {
		logger.ErrorContext(ctx, "sms provider unconfigured: its messages are held until it is configured",
			slog.String("destination", name), slog.String("problem", problem.Error()))
		return sms.Provider{Sender: sms.Unconfigured(name), Destination: registry.RegisterUnconfigured(name, problem.Error())}
	}
	var out []sms.Provider
	seen := map[string]bool{}
	for _, name := range strings.Split(cfg.SMSProviders, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if seen[name] {
			return nil, usageError{msg: "SMS_PROVIDERS names " + name + " twice"}
		}
		seen[name] = true
		var (
			p      sms.Provider
			sender string
		)
		switch name {
		case twilio.Provider:
			if err := cfg.Twilio.Validate(); err != nil {
				out = append(out, unconfigured(name, err))
				continue
			}
			tw, err := twilio.New(cfg.Twilio, transport)
			if err != nil {
				return nil, fmt.Errorf("error creating twilio client: %w", err)
			}
			p = sms.Provider{Sender: tw, Probe: tw.Probe}
			sender = cmp.Or(cfg.Twilio.FromNumber, cfg.Twilio.MessagingServiceSID)
		case telnyx.Provider:
			if err := cfg.Telnyx.Validate(); err != nil {
				out = append(out, unconfigured(name, err))
				continue
			}
			tx, err := telnyx.New(cfg.Telnyx, transport)
			if err != nil {
				return nil, fmt.Errorf("error creating telnyx client: %w", err)
			}
			p = sms.Provider{Sender: tx, Probe: tx.Probe}
			sender = cmp.Or(cfg.Telnyx.FromNumber, cfg.Telnyx.MessagingProfileID)
		default:
			return nil, usageError{msg: fmt.Sprintf("SMS_PROVIDERS: %q is not twilio or telnyx", name)}
		}
		settings, err := resilience.LoadSettings(ctx, name)
		if err != nil {
			return nil, usageError{msg: err.Error()}
		}
		// Only sends count toward an SMS destination's breaker: look-ups
		// that work while sends fail must not hold it closed.
		p.Destination = registry.Register(name, settings, sms.Outcome).CountWritesOnly()
		if settings.RateLimit != "" {
			lim, err := ratelimit.ParseLimit(settings.RateLimit)
			if err != nil {
				return nil, usageError{msg: resilience.EnvPrefix(name) + "RATE_LIMIT: " + err.Error()}
			}
			// One limit per sender: a long code sends about one segment a second.
			p.Slots = limiter.Slots(name+":"+sender, lim)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, usageError{msg: "SMS_PROVIDERS names no provider"}
	}
	return out, nil
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

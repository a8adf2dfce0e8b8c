package main

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/switchboard-health/switchboard/internal/api"
	"github.com/switchboard-health/switchboard/internal/fhir"
	"github.com/switchboard-health/switchboard/internal/opsmetrics"
	"github.com/switchboard-health/switchboard/internal/secrets"
	"github.com/switchboard-health/switchboard/internal/telemetry"
	"github.com/switchboard-health/switchboard/internal/telnyx"
	"github.com/switchboard-health/switchboard/internal/wearables"
	"github.com/switchboard-health/switchboard/internal/worker"
)

// apiConfig is what `switchboard api` reads.
type apiConfig struct {
	Base       base
	API        api.Config
	Vendors    apiVendors
	DBMaxConns int32 `env:"API_DB_MAX_CONNS, default=20"`
	// FHIRIdentity is read only to refuse the example identifier system.
	FHIRIdentity fhir.Config
}

// apiVendors are the vendor settings the api needs to verify webhooks and
// run the wearables connect flow; the vendor packages own the variables.
type apiVendors struct {
	TwilioToken     string `env:"TWILIO_AUTH_TOKEN"`
	TelnyxPublicKey string `env:"TELNYX_PUBLIC_KEY"`
	TokenKeys       string `env:"TOKEN_ENCRYPTION_KEYS"`
	Wearables       wearables.Config
}

// apply puts the vendor settings into the api's configuration.
func (v apiVendors) apply(cfg *api.Config, pool *pgxpool.Pool, logger *slog.Logger) error {
	cfg.TwilioAuthToken = v.TwilioToken
	if v.TelnyxPublicKey != "" {
		key, err := telnyx.ParsePublicKey(v.TelnyxPublicKey)
		if err != nil {
			return usageError{msg: "TELNYX_PUBLIC_KEY: " + err.Error()}
		}
		cfg.TelnyxPublicKey = key
	}
	if v.TokenKeys == "" {
		logger.Warn("wearables routes disabled: TOKEN_ENCRYPTION_KEYS is not set")
		return nil
	}
	keys, err := secrets.Parse(v.TokenKeys)
	if err != nil {
		return usageError{msg: err.Error()}
	}
	w, err := wearables.NewAPI(wearables.Deps{Pool: pool, Keys: keys, Config: v.Wearables, Logger: logger})
	if err != nil {
		return fmt.Errorf("error configuring wearables: %w", err)
	}
	cfg.Wearables = w
	return nil
}

// apiCmd is `switchboard api`.
type apiCmd struct{}

func (apiCmd) Help() string {
	return `Serves provider webhooks, River UI (/riverui/, operator auth) and /healthz,
/readyz on API_ADDR; /metrics on API_METRICS_ADDR (loopback by default).`
}

func (apiCmd) Run(e *env) error {
	ctx, stderr := e.ctx, e.stderr
	var cfg apiConfig
	if err := load(ctx, &cfg); err != nil {
		return err
	}
	if err := cfg.FHIRIdentity.CheckIdentity(); err != nil {
		return err
	}
	logger, err := newLogger(cfg.Base.Log, stderr)
	if err != nil {
		return err
	}
	stopTracing, err := startTracing(ctx, "switchboard-api")
	if err != nil {
		return err
	}
	defer stopTracing()
	pool, err := openServicePool(ctx, cfg.Base, cfg.DBMaxConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := cfg.Vendors.apply(&cfg.API, pool, logger); err != nil {
		return err
	}
	registerOpsMetrics(pool)
	srv, err := newAPIServer(cfg.API, pool, logger)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

// newInsertClient is an insert-only River client: the api enqueues webhook
// processing and serves River UI, it works no jobs.
func newInsertClient(pool *pgxpool.Pool) (*river.Client[pgx.Tx], error) {
	return river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: worker.Schema, Middleware: telemetry.RiverMiddleware()})
}

func newAPIServer(cfg api.Config, pool *pgxpool.Pool, logger *slog.Logger) (*api.Server, error) {
	client, err := newInsertClient(pool)
	if err != nil {
		return nil, err
	}
	return api.New(cfg, pool, client, logger)
}

var (
	opsMu        sync.Mutex
	opsCollector prometheus.Collector
)

// registerOpsMetrics exports the database-derived gauges of pool, replacing
// those of an earlier pool in this process (tests run the api more than
// once; a second MustRegister would panic).
func registerOpsMetrics(pool *pgxpool.Pool) {
	opsMu.Lock()
	defer opsMu.Unlock()
	if opsCollector != nil {
		prometheus.Unregister(opsCollector)
	}
	opsCollector = opsmetrics.NewCollector(pool)
	prometheus.MustRegister(opsCollector)
}

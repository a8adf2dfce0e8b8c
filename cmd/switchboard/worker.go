package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"golang.org/x/sync/errgroup"

	"github.com/switchboard-health/switchboard/internal/httpserver"
	"github.com/switchboard-health/switchboard/internal/sms"
	"github.com/switchboard-health/switchboard/internal/twilio"
	"github.com/switchboard-health/switchboard/internal/worker"
)

// workerConfig is what `switchboard worker` reads.
type workerConfig struct {
	Base   base
	Worker worker.Config
	SMS    sms.Config
	Twilio twilio.Config
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
	client, err := newWorkerClient(cfg, pool, logger)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return worker.Run(gctx, cfg.Worker, client, logger) })
	g.Go(func() error { return httpserver.Serve(gctx, cfg.Worker.Addr, workerProbes(pool, client), logger) })
	return g.Wait()
}

// newWorkerClient wires the vendors and the workers into a River client.
func newWorkerClient(cfg workerConfig, pool *pgxpool.Pool, logger *slog.Logger) (*river.Client[pgx.Tx], error) {
	if err := cfg.Twilio.Validate(); err != nil {
		return nil, usageError{err.Error()}
	}
	transport := worker.NewTransport(cfg.Worker)
	tw, err := twilio.New(cfg.Twilio, transport)
	if err != nil {
		return nil, fmt.Errorf("error creating twilio client: %w", err)
	}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, sms.NewSendWorker(cfg.SMS, pool, tw, logger)); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, sms.NewWebhookWorker(pool, map[string]sms.ReportParser{twilio.Provider: tw}, logger)); err != nil {
		return nil, err
	}
	return worker.NewClient(cfg.Worker, pool, workers, logger)
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

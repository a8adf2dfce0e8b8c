package httpserver_test

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"os/signal"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-health/switchboard/internal/httpserver"
)

// A worker serves its probes on WORKER_ADDR until SIGINT, then shuts down
// gracefully.
func ExampleServe() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logger := slog.Default()

	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		logger.Error("error opening pool", slog.Any("error", err))
		return
	}
	defer pool.Close()

	mux := http.NewServeMux()
	probes := httpserver.Probes(pool, func(context.Context) error {
		return nil // e.g. "is the River client started?"
	})
	mux.Handle("/", probes)

	if err := httpserver.Serve(ctx, ":9090", mux, logger); err != nil {
		logger.Error("error serving", slog.Any("error", err))
	}
}

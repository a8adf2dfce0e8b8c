package opsmetrics_test

import (
	"context"
	"net/http"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-health/switchboard/internal/opsmetrics"
)

// The api process registers the collector once; every scrape of /metrics
// then reads a fresh snapshot.
func ExampleNewCollector() {
	pool, err := pgxpool.New(context.Background(), os.Getenv("DATABASE_URL"))
	if err != nil {
		return
	}
	defer pool.Close()

	reg := prometheus.NewRegistry() // prometheus.DefaultRegisterer in cmd
	reg.MustRegister(opsmetrics.NewCollector(pool))
	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
}

package opsmetrics

import (
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// NewCollectorTimeout is NewCollector with another scrape timeout.
func NewCollectorTimeout(pool *pgxpool.Pool, timeout time.Duration) prometheus.Collector {
	return newCollector(pool, timeout)
}

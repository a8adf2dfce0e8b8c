package wearables

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/switchboard-health/switchboard/db"
)

var (
	// refreshFailures is what SwitchboardTokenRefreshFailures alerts on.
	refreshFailures = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_token_refresh_failures_total",
		Help: "OAuth token refreshes that failed, by provider (invalid_grant included).",
	}, []string{"provider"})
	samplesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_wearables_samples_total",
		Help: "Wearable samples received, by source and result (new, duplicate, rejected, flagged).",
	}, []string{"source", "result"})

	accountSwapsRefused = promauto.NewCounter(prometheus.CounterOpts{
		Name: "switchboard_wearables_account_swaps_refused_total",
		Help: "Consents refused because they would attach a different Google account to a patient who has one.",
	})

	stalePool atomic.Pointer[pgxpool.Pool]
	staleOnce sync.Once
)

func init() {
	// The alert needs the series from the start.
	refreshFailures.WithLabelValues("google_health")
}

// registerStaleGauge exports switchboard_wearables_stale_connections, read
// from the database at each scrape (every replica reports the same number).
func registerStaleGauge(pool *pgxpool.Pool) {
	stalePool.Store(pool)
	staleOnce.Do(func() {
		prometheus.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchboard_wearables_stale_connections",
			Help: "Active wearable connections that produced no data for WEARABLES_STALE_AFTER.",
		}, func() float64 {
			p := stalePool.Load()
			if p == nil {
				return 0
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := db.New().ConnectionsStaleCount(ctx, p)
			if err != nil {
				return -1
			}
			return float64(n)
		}))
	})
}

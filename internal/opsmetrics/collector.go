package opsmetrics

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// ScrapeTimeout bounds the snapshot one scrape reads. A scrape that exceeds
// it carries no state gauges and counts as an error.
const ScrapeTimeout = 2 * time.Second

var (
	queueAvailableDesc = prometheus.NewDesc(
		"switchboard_queue_available_jobs",
		"River jobs available to work, by queue.",
		[]string{"queue"}, nil)
	queueOldestDesc = prometheus.NewDesc(
		"switchboard_queue_oldest_available_seconds",
		"How long the oldest available River job of the queue has waited past its scheduled time; 0 when none.",
		[]string{"queue"}, nil)
	deadLettersOpenDesc = prometheus.NewDesc(
		"switchboard_dead_letters_open",
		"Open dead letters, by job kind (0 for every known kind without any).",
		[]string{"kind"}, nil)
	destinationUpDesc = prometheus.NewDesc(
		"switchboard_destination_up",
		"1 when the destination's last success is newer than its last failure (or it never failed), else 0.",
		[]string{"destination"}, nil)
	destinationBreakerDesc = prometheus.NewDesc(
		"switchboard_destination_breaker_state",
		"Circuit breaker of the destination: 0 closed, 1 half-open, 2 open.",
		[]string{"destination"}, nil)
	destinationPausedDesc = prometheus.NewDesc(
		"switchboard_destination_paused",
		"1 when an operator paused calls to the destination, else 0.",
		[]string{"destination"}, nil)
)

// breakerValues are the values of switchboard_destination_breaker_state.
var breakerValues = map[string]float64{
	BreakerClosed:   0,
	BreakerHalfOpen: 1,
	BreakerOpen:     2,
}

// collector reads a Snapshot on every scrape.
type collector struct {
	pool    *pgxpool.Pool
	timeout time.Duration
	// flight makes concurrent scrapes share one snapshot: a slow database
	// is not queried once per waiting scrape.
	flight singleflight.Group
	errors prometheus.Counter
}

// NewCollector returns a collector that reads a snapshot from pool on every
// scrape and exports it as the gauges listed in the package documentation,
// plus the counter switchboard_opsmetrics_errors_total. It registers
// nothing; register it once per registry. It is safe for concurrent scrapes.
func NewCollector(pool *pgxpool.Pool) prometheus.Collector {
	return newCollector(pool, ScrapeTimeout)
}

func newCollector(pool *pgxpool.Pool, timeout time.Duration) *collector {
	return &collector{
		pool:    pool,
		timeout: timeout,
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_opsmetrics_errors_total",
			Help: "Scrapes whose operational snapshot (queues, dead letters, destinations) could not be read from the database.",
		}),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueAvailableDesc
	ch <- queueOldestDesc
	ch <- deadLettersOpenDesc
	ch <- destinationUpDesc
	ch <- destinationBreakerDesc
	ch <- destinationPausedDesc
	ch <- c.errors.Desc()
}

// Collect implements prometheus.Collector. When the snapshot cannot be read
// it sends only the errors counter.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	if snap, err := c.snapshot(); err == nil {
		collectSnapshot(ch, snap)
	}
	ch <- c.errors
}

// snapshot reads a snapshot, or waits for the one already being read. A
// failed read increments the errors counter once, however many scrapes
// shared it.
func (c *collector) snapshot() (Snapshot, error) {
	v, err, _ := c.flight.Do("snapshot", func() (any, error) {
		// Not the scrape's context (Collect has none): the read is shared.
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		snap, err := ReadSnapshot(ctx, c.pool)
		if err != nil {
			c.errors.Inc()
		}
		return snap, err
	})
	if err != nil {
		return Snapshot{}, err
	}
	return v.(Snapshot), nil
}

func collectSnapshot(ch chan<- prometheus.Metric, snap Snapshot) {
	for _, q := range snap.Queues {
		ch <- prometheus.MustNewConstMetric(queueAvailableDesc, prometheus.GaugeValue, float64(q.Available), q.Name)
		ch <- prometheus.MustNewConstMetric(queueOldestDesc, prometheus.GaugeValue, q.OldestAvailable.Seconds(), q.Name)
	}
	for kind, n := range snap.DeadLettersOpen {
		ch <- prometheus.MustNewConstMetric(deadLettersOpenDesc, prometheus.GaugeValue, float64(n), kind)
	}
	for _, d := range snap.Destinations {
		ch <- prometheus.MustNewConstMetric(destinationUpDesc, prometheus.GaugeValue, boolValue(d.Up()), d.Name)
		// The table's CHECK allows only the three states; anything else
		// would be a new state this code does not know: no series.
		if v, ok := breakerValues[d.BreakerState]; ok {
			ch <- prometheus.MustNewConstMetric(destinationBreakerDesc, prometheus.GaugeValue, v, d.Name)
		}
		ch <- prometheus.MustNewConstMetric(destinationPausedDesc, prometheus.GaugeValue, boolValue(d.Paused), d.Name)
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

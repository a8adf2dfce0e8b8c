// Package opsmetrics reads Switchboard's operational state from PostgreSQL:
// River queue depths, open dead letters and destination health. The api's
// GET /status shows it as JSON and NewCollector exports it to Prometheus; both
// read it with ReadSnapshot, so they always agree.
//
// # Queries
//
// The SQL is in queries/status.sql (StatusQueueDepth, StatusDeadLettersOpen,
// StatusDestinationList). ReadSnapshot runs the three in one read-only
// repeatable-read transaction, so they see the same moment. Queue depths read
// only the non-final job states, through River's
// river_job_prioritized_fetching_index (an index-only scan), and never touch
// the completed jobs that make up most of a busy river_job table.
//
// # Metrics
//
// NewCollector returns a prometheus.Collector that takes a snapshot on every
// scrape, bounded by ScrapeTimeout, and exports these gauges:
//
//   - switchboard_queue_available_jobs{queue}: available jobs.
//   - switchboard_queue_oldest_available_seconds{queue}: how long the oldest
//     available job has waited past its scheduled time; 0 when none.
//   - switchboard_dead_letters_open{kind}: open dead letters, with a 0 for
//     every kind of switchboard.job_kinds that has none, so alerts always see
//     a series.
//   - switchboard_destination_up{destination}: 1 when the last success is
//     newer than the last failure (or there was no failure), else 0.
//   - switchboard_destination_breaker_state{destination}: 0 closed,
//     1 half-open, 2 open.
//   - switchboard_destination_paused{destination}: 1 when an operator paused
//     it.
//
// Every queue of river_queue or job_kinds has a series even without jobs.
// When the database fails or is too slow, the scrape carries none of these
// gauges (absent, not stale) and the counter
// switchboard_opsmetrics_errors_total is incremented. Scrapes that arrive
// while a snapshot is being read share it instead of querying again.
//
// The package registers nothing: the process that serves /metrics does, with
// prometheus.MustRegister(opsmetrics.NewCollector(pool)).
package opsmetrics

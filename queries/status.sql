-- name: StatusQueueDepth :many
-- For GET /status and the opsmetrics collector, run on every scrape. Per
-- queue: jobs waiting or in flight by state, and the age in seconds of the
-- oldest available job (0 when none). The state filter is the leading column
-- of river_job_prioritized_fetching_index (state, queue, priority,
-- scheduled_at, id), so only those states are read, from the index, never
-- the finalized (completed, cancelled, discarded) jobs. Queues River knows
-- (river_queue) and queues of job_kinds are listed even when they hold no
-- jobs, so they always have a row.
WITH depth AS (
    SELECT j.queue,
        count(*) FILTER (WHERE j.state = 'available') AS available,
        count(*) FILTER (WHERE j.state = 'scheduled') AS scheduled,
        count(*) FILTER (WHERE j.state = 'retryable') AS retryable,
        count(*) FILTER (WHERE j.state = 'running') AS running,
        min(j.scheduled_at) FILTER (WHERE j.state = 'available') AS oldest_available_at
    FROM switchboard.river_job AS j
    WHERE j.state IN ('available', 'scheduled', 'retryable', 'running')
    GROUP BY j.queue
), names AS (
    SELECT rq.name AS queue FROM switchboard.river_queue AS rq
    UNION
    SELECT k.queue FROM switchboard.job_kinds AS k
    UNION
    SELECT depth.queue FROM depth
)
SELECT n.queue::text AS queue,
    coalesce(d.available, 0)::bigint AS available,
    coalesce(d.scheduled, 0)::bigint AS scheduled,
    coalesce(d.retryable, 0)::bigint AS retryable,
    coalesce(d.running, 0)::bigint AS running,
    coalesce(extract(epoch FROM greatest(now() - d.oldest_available_at, interval '0')), 0)::float8
        AS oldest_available_seconds
FROM names AS n
LEFT JOIN depth AS d ON d.queue = n.queue
ORDER BY n.queue;

-- name: StatusDeadLettersOpen :many
-- Open dead letters by kind, with a 0 row for every kind of job_kinds that
-- has none (so alerts always see a series). Kinds not in job_kinds (an
-- unknown kind's dead letters) appear when they have open rows. Served by
-- dead_letters_open_idx (kind, id) WHERE state = 'open'.
SELECT c.kind::text AS kind, sum(c.n)::bigint AS open
FROM (
    SELECT dl.kind, count(*) AS n
    FROM switchboard.dead_letters AS dl
    WHERE dl.state = 'open'
    GROUP BY dl.kind
    UNION ALL
    SELECT k.kind, 0 FROM switchboard.job_kinds AS k
) AS c
GROUP BY c.kind
ORDER BY c.kind;

-- name: StatusDestinationList :many
-- Every destination_health row, for operators.
SELECT destination, last_success_at, last_failure_at, last_failure_class,
    consecutive_failures, breaker_state, paused, paused_by, paused_at,
    last_probe_at, calls_total, updated_at
FROM switchboard.destination_health
ORDER BY destination;

-- name: DestinationHealthMerge :exec
-- Merges one worker's view of a destination since its last flush. The
-- newest success or failure wins; consecutive failures restart from the
-- reporter's count when it saw the newest success.
INSERT INTO switchboard.destination_health AS d
    (destination, last_success_at, last_failure_at, last_failure_class, consecutive_failures,
     breaker_state, breaker_changed_at, calls_total, last_probe_at)
VALUES (@destination, sqlc.narg(last_success_at), sqlc.narg(last_failure_at), sqlc.narg(last_failure_class),
        @consecutive_failures, @breaker_state, sqlc.narg(breaker_changed_at), @calls, sqlc.narg(last_probe_at))
ON CONFLICT (destination) DO UPDATE SET
    consecutive_failures = CASE
        WHEN excluded.last_success_at IS NOT NULL AND excluded.last_success_at >= coalesce(d.last_success_at, '-infinity')
            THEN excluded.consecutive_failures
        ELSE d.consecutive_failures + excluded.consecutive_failures END,
    last_success_at = greatest(d.last_success_at, excluded.last_success_at),
    last_failure_class = CASE
        WHEN excluded.last_failure_at IS NOT NULL AND excluded.last_failure_at >= coalesce(d.last_failure_at, '-infinity')
            THEN excluded.last_failure_class ELSE d.last_failure_class END,
    last_failure_at = greatest(d.last_failure_at, excluded.last_failure_at),
    breaker_state = CASE
        WHEN excluded.breaker_changed_at IS NOT NULL AND excluded.breaker_changed_at >= coalesce(d.breaker_changed_at, '-infinity')
            THEN excluded.breaker_state ELSE d.breaker_state END,
    breaker_changed_at = greatest(d.breaker_changed_at, excluded.breaker_changed_at),
    calls_total = d.calls_total + excluded.calls_total,
    last_probe_at = greatest(d.last_probe_at, excluded.last_probe_at),
    updated_at = now();

-- name: DestinationHealthList :many
SELECT * FROM switchboard.destination_health ORDER BY destination;

-- name: DestinationHealthGet :one
SELECT * FROM switchboard.destination_health WHERE destination = @destination;

-- name: DestinationPausedList :many
SELECT destination FROM switchboard.destination_health WHERE paused ORDER BY destination;

-- name: DestinationSetPaused :exec
SELECT switchboard.destination_set_paused(@destination::text, @paused::boolean, @actor::text);

-- name: DeadLetterList :many
SELECT id, job_id, kind, queue, class, job_state, subject, state, attempts, created_at, updated_at, requeued_job_id
FROM switchboard.dead_letters
WHERE (sqlc.narg(state)::text IS NULL OR state = sqlc.narg(state))
  AND (sqlc.narg(kind)::text IS NULL OR kind = sqlc.narg(kind))
ORDER BY id DESC
LIMIT @max_rows;

-- name: DeadLetterGet :one
SELECT * FROM switchboard.dead_letters WHERE id = @id;

-- name: DeadLetterRetry :one
SELECT switchboard.dlq_retry(@ids::bigint[], @actor::text)::bigint[] AS job_ids;

-- name: DeadLetterPurge :one
SELECT switchboard.dlq_purge(@ids::bigint[], @actor::text)::integer AS purged;

-- name: DeadLetterCountOpenByKind :many
SELECT kind, count(*)::bigint AS n FROM switchboard.dead_letters WHERE state = 'open' GROUP BY kind ORDER BY kind;

-- name: DeadLetterRetryWhere :one
SELECT switchboard.dlq_retry_where(sqlc.narg(kind)::text, sqlc.narg(class)::text, sqlc.narg(since)::timestamptz, @actor::text)::integer AS requeued;

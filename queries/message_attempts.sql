-- name: AttemptStart :one
-- Written and committed before the request leaves.
INSERT INTO switchboard.message_attempts (message_id, provider, job_id, job_attempt)
VALUES (@message_id, @provider, @job_id, @job_attempt)
RETURNING *;

-- name: AttemptFinish :exec
UPDATE switchboard.message_attempts
SET outcome = @outcome, finished_at = now(),
    provider_message_id = sqlc.narg(provider_message_id),
    http_status = sqlc.narg(http_status), error_code = sqlc.narg(error_code)
WHERE id = @id;

-- name: AttemptLatestUnresolved :one
-- The newest attempt whose request may have been accepted without our
-- knowing: in flight (no outcome) or ambiguous. Such an attempt is
-- reconciled with the provider before anything is sent again.
SELECT * FROM switchboard.message_attempts
WHERE message_id = @message_id AND (outcome IS NULL OR outcome = 'ambiguous')
ORDER BY id DESC
LIMIT 1;

-- name: AttemptResolveAll :exec
-- After reconciliation every unresolved attempt of the message is settled.
UPDATE switchboard.message_attempts
SET outcome = @outcome, finished_at = coalesce(finished_at, now()),
    provider_message_id = coalesce(sqlc.narg(provider_message_id), provider_message_id)
WHERE message_id = @message_id AND (outcome IS NULL OR outcome = 'ambiguous');

-- name: AttemptListByMessage :many
SELECT * FROM switchboard.message_attempts WHERE message_id = @message_id ORDER BY id;

-- name: MessageGetForUpdate :one
-- Locks the message while a worker decides what to do with it.
SELECT * FROM switchboard.messages WHERE id = @id FOR UPDATE;

-- name: MessageGet :one
SELECT * FROM switchboard.messages WHERE id = @id;

-- name: MessageGetByProviderID :one
SELECT * FROM switchboard.messages
WHERE provider = @provider AND provider_message_id = @provider_message_id
FOR UPDATE;

-- name: MessageMarkSending :exec
UPDATE switchboard.messages
SET status = 'sending', provider = @provider, segments = @segments, encoding = @encoding, updated_at = now()
WHERE id = @id;

-- name: MessageRequeue :exec
-- A provider provably did not accept the attempt: the message waits again.
UPDATE switchboard.messages
SET status = 'queued', updated_at = now()
WHERE id = @id AND status = 'sending' AND provider_message_id IS NULL;

-- name: MessageAccept :exec
UPDATE switchboard.messages
SET provider = @provider, provider_message_id = @provider_message_id,
    segments = coalesce(sqlc.narg(segments), segments),
    status = CASE WHEN status IN ('queued', 'sending') THEN 'sending' ELSE status END,
    accepted_at = now(), updated_at = now()
WHERE id = @id;

-- name: MessageFinish :exec
-- Ends a message with a final status, its reason and provider code.
UPDATE switchboard.messages
SET status = @status, error_code = sqlc.narg(error_code), error_reason = sqlc.narg(error_reason),
    final_at = now(), updated_at = now()
WHERE id = @id;

-- name: MessageAdvance :one
-- Moves a message's status forward only; returns the row, updated or not.
UPDATE switchboard.messages
SET status = @status,
    error_code = coalesce(sqlc.narg(error_code), error_code),
    error_reason = coalesce(sqlc.narg(error_reason), error_reason),
    final_at = CASE WHEN @final::boolean THEN now() ELSE final_at END,
    updated_at = now()
WHERE id = @id
RETURNING *;

-- name: MessageCountByStatus :many
SELECT status, count(*)::bigint AS n FROM switchboard.messages GROUP BY status ORDER BY status;

-- name: MessageListUnfinished :many
-- Accepted messages with no final status since before the cutoff, oldest
-- first, not reconciled within the last interval.
SELECT id, provider, provider_message_id, status FROM switchboard.messages
WHERE provider_message_id IS NOT NULL AND status IN ('sending', 'sent')
  AND accepted_at < @cutoff::timestamptz AND accepted_at > @oldest::timestamptz
  AND (reconciled_at IS NULL OR reconciled_at < @recheck_before::timestamptz)
ORDER BY accepted_at
LIMIT @max_rows::integer;

-- name: MessageMarkReconciled :exec
UPDATE switchboard.messages SET reconciled_at = now() WHERE id = @id;

-- name: MessageSetPurpose :exec
UPDATE switchboard.messages SET purpose = @purpose WHERE id = @id;

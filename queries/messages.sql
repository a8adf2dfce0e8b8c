-- name: MessageGet :one
SELECT * FROM switchboard.messages WHERE id = @id;

-- name: MessageGetByProviderID :one
SELECT * FROM switchboard.messages
WHERE provider = @provider AND provider_message_id = @provider_message_id
FOR UPDATE;

-- name: MessagesForSend :many
-- Locks the messages a worker (or a batch of them) decides on, in id order
-- as every writer of several messages takes them, with whether the
-- recipient opted out. Their attempts must be read by a later statement:
-- this one's snapshot predates the wait for a lock.
SELECT sqlc.embed(m),
       EXISTS (SELECT FROM switchboard.sms_consent c WHERE c.phone_e164 = m.to_e164 AND c.opted_out) AS opted_out
FROM switchboard.messages m
WHERE m.id = ANY (@ids::bigint[])
ORDER BY m.id
FOR UPDATE OF m;


-- name: MessageRequeue :exec
-- A provider provably did not accept the attempt: the message waits again.
UPDATE switchboard.messages
SET status = 'queued', updated_at = now()
WHERE id = @id AND status = 'sending' AND provider_message_id IS NULL;

-- name: MessagesAccept :exec
-- Records what the providers accepted: the message is sending from now on.
-- A segment count of 0 (the provider did not say) keeps the one computed
-- before sending.
UPDATE switchboard.messages m
SET provider = s.provider, provider_message_id = s.provider_message_id,
    segments = coalesce(nullif(s.segments, 0), nullif(s.computed_segments, 0), m.segments),
    encoding = coalesce(nullif(s.encoding, ''), m.encoding),
    status = CASE WHEN m.status IN ('queued', 'sending') THEN 'sending' ELSE m.status END,
    accepted_at = now(), updated_at = now()
FROM (SELECT unnest(@ids::bigint[]) AS id, unnest(@providers::text[]) AS provider,
             unnest(@provider_message_ids::text[]) AS provider_message_id, unnest(@segments::integer[]) AS segments,
             unnest(@computed_segments::integer[]) AS computed_segments, unnest(@encodings::text[]) AS encoding) AS s
WHERE m.id = s.id;

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

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


-- name: SendRunsHolding :many
-- The messages (of message_ids) whose sms_send run still holds them: the
-- message's job is the run's job, and River's row of that job still shows
-- the run — running, with the run's attempt and snooze count. River changes
-- one of those on every fetch, snooze, retry and rescue, so a run that lost
-- the job (rescued, or completed by a later run) is not listed. Read after
-- the messages' locks are held, by a statement of its own.
SELECT m.id, r.job_id::bigint AS job_id, r.attempt::integer AS attempt, r.snoozes::integer AS snoozes
FROM switchboard.messages m
JOIN (SELECT unnest(@message_ids::bigint[]) AS message_id, unnest(@job_ids::bigint[]) AS job_id,
             unnest(@attempts::integer[]) AS attempt, unnest(@snoozes::integer[]) AS snoozes) AS r
    ON r.message_id = m.id AND m.job_id = r.job_id
JOIN switchboard.river_job j ON j.id = r.job_id
WHERE j.state = 'running' AND j.attempt = r.attempt
  AND coalesce((j.metadata ->> 'snoozes')::integer, 0) = r.snoozes;

-- name: MessagesLock :exec
-- Locks messages in id order, as every writer of several messages takes them.
SELECT id FROM switchboard.messages WHERE id = ANY (@ids::bigint[]) ORDER BY id FOR UPDATE;

-- name: MessageRequeue :exec
-- A provider provably did not accept the attempt: the message waits again.
UPDATE switchboard.messages
SET status = 'queued', updated_at = now()
WHERE id = @id AND status = 'sending' AND provider_message_id IS NULL;

-- name: MessagesAccept :exec
-- Records what the providers accepted: the message is sending from now on.
-- The first provider id a message takes is kept: a second acceptance (which
-- the fence should make impossible) never overwrites it.
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
WHERE m.id = s.id AND m.provider_message_id IS NULL;

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

-- name: MessageSettleHeld :one
-- An operator's decision about a message held for an operator (00096): the
-- provider message id of its copy, or NULL for none. Returns the retried job.
SELECT switchboard.sms_settle_held(@message_id::bigint, sqlc.narg('provider_message_id')::text, @actor::text)::bigint AS job_id;

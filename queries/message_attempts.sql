-- name: AttemptsStart :many
-- Before the requests leave, in one statement: the messages are being sent
-- through their providers, and each attempt is recorded.
WITH s AS (
    SELECT unnest(@message_ids::bigint[]) AS message_id, unnest(@providers::text[]) AS provider,
           unnest(@job_ids::bigint[]) AS job_id, unnest(@job_attempts::integer[]) AS job_attempt,
           unnest(@segments::integer[]) AS segments, unnest(@encodings::text[]) AS encoding
), marked AS (
    UPDATE switchboard.messages m
    SET status = 'sending', provider = s.provider, segments = s.segments, encoding = s.encoding, updated_at = now()
    FROM s WHERE m.id = s.message_id
    RETURNING m.id
)
INSERT INTO switchboard.message_attempts (message_id, provider, job_id, job_attempt)
SELECT s.message_id, s.provider, s.job_id, s.job_attempt FROM s JOIN marked ON marked.id = s.message_id
RETURNING *;

-- name: AttemptsAccept :exec
-- The providers accepted these attempts.
UPDATE switchboard.message_attempts a
SET outcome = 'accepted', finished_at = now(), provider_message_id = s.provider_message_id
FROM (SELECT unnest(@ids::bigint[]) AS id, unnest(@provider_message_ids::text[]) AS provider_message_id) AS s
WHERE a.id = s.id;

-- name: AttemptFinish :exec
UPDATE switchboard.message_attempts
SET outcome = @outcome, finished_at = now(),
    provider_message_id = sqlc.narg(provider_message_id),
    http_status = sqlc.narg(http_status), error_code = sqlc.narg(error_code)
WHERE id = @id;


-- name: AttemptResolveAll :exec
-- After reconciliation every unresolved attempt of the message is settled.
UPDATE switchboard.message_attempts
SET outcome = @outcome, finished_at = coalesce(finished_at, now()),
    provider_message_id = coalesce(sqlc.narg(provider_message_id), provider_message_id)
WHERE message_id = @message_id AND (outcome IS NULL OR outcome = 'ambiguous');

-- name: AttemptsLatestUnresolved :many
-- The newest attempt of each message whose request may have been accepted
-- without our knowing: in flight (no outcome) or ambiguous. Such an attempt
-- is reconciled with the provider before anything is sent again.
SELECT DISTINCT ON (message_id) * FROM switchboard.message_attempts
WHERE message_id = ANY (@message_ids::bigint[]) AND (outcome IS NULL OR outcome = 'ambiguous')
ORDER BY message_id, id DESC;

-- name: AttemptListByMessage :many
SELECT * FROM switchboard.message_attempts WHERE message_id = @message_id ORDER BY id;

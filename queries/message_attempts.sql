-- name: AttemptsStart :many
-- Written and committed before the requests leave, under the messages'
-- locks: an attempt without an outcome is a request that may be in flight.
INSERT INTO switchboard.message_attempts (message_id, provider, job_id, job_attempt)
SELECT unnest(@message_ids::bigint[]), unnest(@providers::text[]), unnest(@job_ids::bigint[]), unnest(@job_attempts::integer[])
RETURNING *;

-- name: AttemptsAccept :many
-- The providers accepted these attempts. Only an attempt still without an
-- outcome takes it: a result that commits after its run gave up, when a
-- later run has already settled the attempt, changes nothing. Returns the
-- attempts that took it.
UPDATE switchboard.message_attempts a
SET outcome = 'accepted', finished_at = now(), provider_message_id = s.provider_message_id
FROM (SELECT unnest(@ids::bigint[]) AS id, unnest(@provider_message_ids::text[]) AS provider_message_id) AS s
WHERE a.id = s.id AND a.outcome IS NULL
RETURNING a.id;

-- name: AttemptFinish :exec
UPDATE switchboard.message_attempts
SET outcome = @outcome, finished_at = now(),
    provider_message_id = sqlc.narg(provider_message_id),
    http_status = sqlc.narg(http_status), error_code = sqlc.narg(error_code)
WHERE id = @id;


-- name: AttemptSettle :execrows
-- Settles the one attempt a reconciliation asked its provider about, if no
-- one settled it since: attempts made after the question are not touched.
-- A provider id already recorded is kept.
UPDATE switchboard.message_attempts
SET outcome = @outcome, finished_at = coalesce(finished_at, now()),
    provider_message_id = coalesce(provider_message_id, sqlc.narg(provider_message_id))
WHERE id = @id AND (outcome IS NULL OR outcome IN ('ambiguous', 'held'));

-- name: AttemptsLatestUnresolved :many
-- The newest attempt of each message whose request may have been accepted
-- without our knowing: in flight (no outcome), ambiguous, or held for an
-- operator. Such an attempt is reconciled with the provider before anything
-- is sent again.
SELECT DISTINCT ON (message_id) * FROM switchboard.message_attempts
WHERE message_id = ANY (@message_ids::bigint[]) AND (outcome IS NULL OR outcome IN ('ambiguous', 'held'))
ORDER BY message_id, id DESC;

-- name: AttemptListByMessage :many
SELECT * FROM switchboard.message_attempts WHERE message_id = @message_id ORDER BY id;

-- name: ProviderIDsTakenElsewhere :many
-- Which of a provider's message ids another message has adopted (on the
-- message, or on one of its attempts): a reconciliation never takes them.
SELECT m.provider_message_id::text FROM switchboard.messages m
WHERE m.provider = @provider::text AND m.provider_message_id = ANY (@provider_message_ids::text[]) AND m.id <> @message_id::bigint
UNION
SELECT a.provider_message_id::text FROM switchboard.message_attempts a
WHERE a.provider = @provider::text AND a.provider_message_id = ANY (@provider_message_ids::text[]) AND a.message_id <> @message_id::bigint;

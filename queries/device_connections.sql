-- name: ConnectionGet :one
SELECT * FROM switchboard.device_connections WHERE id = @id;

-- name: ConnectionGetForUpdate :one
-- ConnectionGetForUpdate locks the connection: token refreshes and status
-- changes of one connection are serialized across every replica.
SELECT * FROM switchboard.device_connections WHERE id = @id FOR UPDATE;

-- name: ConnectionGetByPatientProvider :one
SELECT * FROM switchboard.device_connections WHERE patient_id = @patient_id AND provider = @provider;

-- name: ConnectionGetByPatientProviderForUpdate :one
SELECT * FROM switchboard.device_connections WHERE patient_id = @patient_id AND provider = @provider FOR UPDATE;

-- name: ConnectionGetByExternalUser :one
SELECT * FROM switchboard.device_connections
WHERE provider = @provider AND external_user_id = @external_user_id AND status <> 'revoked';

-- name: ConnectionList :many
SELECT c.id, c.patient_id, p.external_ref, c.provider, c.status, c.status_reason, c.last_sync_at, c.last_data_at,
       c.stale_since, c.consecutive_failures, c.last_error_class
FROM switchboard.device_connections c JOIN switchboard.patients p ON p.id = c.patient_id
WHERE (sqlc.narg(patient_external_ref)::text IS NULL OR p.external_ref = sqlc.narg(patient_external_ref))
ORDER BY c.id;

-- name: ConnectionActivate :one
-- ConnectionActivate records a completed consent: tokens, identity, scopes;
-- status active with failures, staleness and backoff reset. Cursors are kept,
-- so a re-consent resumes where the connection stopped.
INSERT INTO switchboard.device_connections AS c
    (patient_id, provider, external_user_id, legacy_user_id, status, scopes, time_zone, connected_at)
VALUES (@patient_id, @provider, @external_user_id, sqlc.narg(legacy_user_id), 'active', @scopes, sqlc.narg(time_zone), now())
ON CONFLICT (patient_id, provider) DO UPDATE
SET external_user_id = excluded.external_user_id, legacy_user_id = excluded.legacy_user_id,
    status = 'active', status_reason = NULL, scopes = excluded.scopes,
    time_zone = coalesce(excluded.time_zone, c.time_zone),
    consecutive_failures = 0, last_error_class = NULL, retry_after = NULL, stale_since = NULL,
    revoked_at = NULL, connected_at = now(), updated_at = now(),
    -- A different Google account starts over.
    cursors = CASE WHEN c.external_user_id IS DISTINCT FROM excluded.external_user_id THEN '{}'::jsonb ELSE c.cursors END
RETURNING *;

-- name: ConnectionSetTokens :exec
UPDATE switchboard.device_connections
SET access_token_sealed = @access_token_sealed, refresh_token_sealed = @refresh_token_sealed,
    token_key_id = @token_key_id, token_expires_at = @token_expires_at, updated_at = now()
WHERE id = @id;

-- name: ConnectionClearTokens :exec
UPDATE switchboard.device_connections
SET access_token_sealed = NULL, refresh_token_sealed = NULL, token_key_id = NULL, token_expires_at = NULL,
    updated_at = now()
WHERE id = @id;

-- name: ConnectionNeedsReauth :exec
-- ConnectionNeedsReauth stops syncs until the patient consents again.
UPDATE switchboard.device_connections
SET status = 'needs_reauth', status_reason = @reason, access_token_sealed = NULL, token_expires_at = NULL,
    reauth_count = reauth_count + 1, updated_at = now()
WHERE id = @id;

-- name: ConnectionSyncSucceeded :exec
-- ConnectionSyncSucceeded resets failures and advances one data type's
-- cursor (only forward, and only when the window starts at or before it, so
-- a gap left by a failed chunk is read again by the next poll).
UPDATE switchboard.device_connections c
SET last_sync_at = now(), consecutive_failures = 0, retry_after = NULL,
    status = CASE WHEN c.status = 'error' THEN 'active' ELSE c.status END,
    status_reason = CASE WHEN c.status = 'error' THEN NULL ELSE c.status_reason END,
    last_data_at = CASE WHEN @got_data::boolean THEN now() ELSE c.last_data_at END,
    stale_since = CASE WHEN @got_data::boolean THEN NULL ELSE c.stale_since END,
    cursors = CASE
        WHEN c.cursors -> @data_type::text ->> 'until' IS NULL
          OR (c.cursors -> @data_type::text ->> 'until')::timestamptz >= @window_start::timestamptz
        THEN jsonb_set(c.cursors, ARRAY[@data_type::text], jsonb_build_object('until',
            to_jsonb(greatest(@window_end::timestamptz, coalesce((c.cursors -> @data_type::text ->> 'until')::timestamptz, @window_end::timestamptz)))))
        ELSE c.cursors END,
    updated_at = now()
WHERE c.id = @id;

-- name: ConnectionSetCursorStart :exec
-- ConnectionSetCursorStart makes the backfill start the cursor of a data type
-- that has none yet.
UPDATE switchboard.device_connections c
SET cursors = jsonb_set(c.cursors, ARRAY[@data_type::text], jsonb_build_object('until', to_jsonb(@until::timestamptz))),
    updated_at = now()
WHERE c.id = @id AND c.cursors -> @data_type::text ->> 'until' IS NULL;

-- name: ConnectionDisableType :exec
-- ConnectionDisableType stops syncing a data type the patient did not grant.
UPDATE switchboard.device_connections c
SET cursors = jsonb_set(c.cursors, ARRAY[@data_type::text],
        coalesce(c.cursors -> @data_type::text, '{}'::jsonb) || jsonb_build_object('disabled', @reason::text)),
    updated_at = now()
WHERE c.id = @id;

-- name: ConnectionSyncFailed :one
-- ConnectionSyncFailed counts a failure and backs off; at @error_threshold
-- failures in a row the connection moves to error with the class recorded.
UPDATE switchboard.device_connections c
SET consecutive_failures = c.consecutive_failures + 1, last_error_class = @class, last_error_at = now(),
    retry_after = now() + least(interval '1 minute' * power(2, least(c.consecutive_failures, 12)), interval '6 hours'),
    status = CASE WHEN c.status = 'active' AND c.consecutive_failures + 1 >= @error_threshold::int THEN 'error' ELSE c.status END,
    status_reason = CASE WHEN c.status = 'active' AND c.consecutive_failures + 1 >= @error_threshold::int THEN @class ELSE c.status_reason END,
    updated_at = now()
WHERE c.id = @id
RETURNING c.status, c.consecutive_failures;

-- name: ConnectionRevokedByProvider :exec
UPDATE switchboard.device_connections
SET status = 'needs_reauth', status_reason = @reason, updated_at = now()
WHERE id = @id AND status IN ('active', 'error');

-- name: ConnectionsToPoll :many
-- ConnectionsToPoll lists Google connections the safety-net poll syncs:
-- active ones not backing off, and error ones whose backoff has passed.
SELECT * FROM switchboard.device_connections
WHERE provider = 'google_health' AND external_user_id IS NOT NULL
  AND (status = 'active' OR status = 'error')
  AND (retry_after IS NULL OR retry_after <= now())
ORDER BY id;

-- name: ConnectionsMarkStale :many
-- ConnectionsMarkStale flags, once, active connections without data since
-- @since, and returns them (an event each; nothing again until data arrives).
UPDATE switchboard.device_connections
SET stale_since = now(), updated_at = now()
WHERE status = 'active' AND stale_since IS NULL
  AND coalesce(last_data_at, connected_at, created_at) < @since::timestamptz
RETURNING id, patient_id, provider;

-- name: ConnectionsStaleCount :one
SELECT count(*) FROM switchboard.device_connections WHERE status = 'active' AND stale_since IS NOT NULL;

-- name: ConnectionDisconnect :one
SELECT switchboard.wearables_disconnect(@connection_id::bigint, @actor::text);

-- name: UploadTokenAuthenticate :one
-- UploadTokenAuthenticate finds the active Apple Health connection of a
-- live upload token: not expired, not revoked (or still in its rotation
-- grace). Read-only: a wrong token writes nothing.
SELECT t.id AS token_id, c.id AS connection_id, c.patient_id
FROM switchboard.upload_tokens t JOIN switchboard.device_connections c ON c.id = t.connection_id
WHERE t.token_hash = @token_hash AND t.expires_at > now()
  AND (t.revoked_at IS NULL OR t.revoked_at > now())
  AND c.provider = 'apple_health' AND c.status = 'active';

-- name: UploadTokenTouch :exec
-- UploadTokenTouch records a token's use, inside an accepted upload's
-- transaction (at most once a minute per token).
UPDATE switchboard.upload_tokens SET last_used_at = now()
WHERE id = @id AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute');

-- name: UploadTokenIssue :one
SELECT switchboard.wearables_upload_token(@patient_external_ref::text)::text;

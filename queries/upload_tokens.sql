-- name: UploadTokenAuthenticate :one
-- UploadTokenAuthenticate finds the active Apple Health connection of a
-- live upload token and records its use.
UPDATE switchboard.upload_tokens t
SET last_used_at = now()
FROM switchboard.device_connections c
WHERE t.token_hash = @token_hash AND t.revoked_at IS NULL
  AND c.id = t.connection_id AND c.provider = 'apple_health' AND c.status = 'active'
RETURNING c.id AS connection_id, c.patient_id;

-- name: UploadTokenIssue :one
SELECT switchboard.wearables_upload_token(@patient_external_ref::text)::text;

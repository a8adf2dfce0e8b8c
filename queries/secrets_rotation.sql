-- name: SealedDeviceTokensList :many
SELECT id, access_token_sealed, refresh_token_sealed FROM switchboard.device_connections
WHERE access_token_sealed IS NOT NULL OR refresh_token_sealed IS NOT NULL
ORDER BY id;

-- name: SealedDeviceTokensUpdate :execrows
-- Replaces a connection's sealed tokens only if they are still the ones
-- read (a refresh in between wins).
UPDATE switchboard.device_connections
SET access_token_sealed = @new_access, refresh_token_sealed = @new_refresh
WHERE id = @id AND access_token_sealed IS NOT DISTINCT FROM @old_access AND refresh_token_sealed IS NOT DISTINCT FROM @old_refresh;

-- name: SealedBearerTokensList :many
SELECT name, bearer_token_sealed FROM switchboard.ehr_endpoints WHERE bearer_token_sealed IS NOT NULL ORDER BY name;

-- name: SealedBearerTokenUpdate :execrows
UPDATE switchboard.ehr_endpoints SET bearer_token_sealed = @new_sealed
WHERE name = @name AND bearer_token_sealed = @old_sealed;

-- name: SealedSigningKeysList :many
SELECT kid, private_key_sealed FROM switchboard.ehr_signing_keys ORDER BY kid;

-- name: SealedSigningKeyUpdate :execrows
UPDATE switchboard.ehr_signing_keys SET private_key_sealed = @new_sealed
WHERE kid = @kid AND private_key_sealed = @old_sealed;

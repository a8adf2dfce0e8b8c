-- name: EHREndpointGet :one
SELECT * FROM switchboard.ehr_endpoints WHERE id = @id;

-- name: EHREndpointGetByName :one
SELECT * FROM switchboard.ehr_endpoints WHERE name = @name;

-- name: EHREndpointList :many
SELECT * FROM switchboard.ehr_endpoints ORDER BY name;

-- name: EHREndpointInsert :one
INSERT INTO switchboard.ehr_endpoints
    (name, base_url, auth_kind, bearer_token_sealed, client_id, token_url, scopes, signing_key_id,
     push_types, pull_types, rate_limit, identifier_system, include_sms_body, webhook_secret_hash, pull_interval)
VALUES (@name, @base_url, @auth_kind, sqlc.narg(bearer_token_sealed), sqlc.narg(client_id), sqlc.narg(token_url),
        sqlc.narg(scopes), sqlc.narg(signing_key_id), @push_types, @pull_types, sqlc.narg(rate_limit),
        sqlc.narg(identifier_system), @include_sms_body, sqlc.narg(webhook_secret_hash), @pull_interval)
RETURNING *;

-- name: EHREndpointSetEnabled :one
UPDATE switchboard.ehr_endpoints SET enabled = @enabled, updated_at = now() WHERE name = @name RETURNING id;

-- name: EHREndpointSetCapabilities :exec
UPDATE switchboard.ehr_endpoints SET capabilities = @capabilities, capabilities_at = now() WHERE id = @id;

-- name: EHRSigningKeyInsert :one
INSERT INTO switchboard.ehr_signing_keys (kid, alg, private_key_sealed, public_jwk)
VALUES (@kid, @alg, @private_key_sealed, @public_jwk)
RETURNING *;

-- name: EHRSigningKeyGet :one
SELECT * FROM switchboard.ehr_signing_keys WHERE id = @id;

-- name: EHRSigningKeyListActive :many
SELECT * FROM switchboard.ehr_signing_keys WHERE retired_at IS NULL ORDER BY id;

-- name: EHREndpointSetBaseURL :exec
UPDATE switchboard.ehr_endpoints SET base_url = @base_url, capabilities = NULL, capabilities_at = NULL, updated_at = now()
WHERE id = @id;

-- name: EHREndpointSetWritePlan :exec
UPDATE switchboard.ehr_endpoints SET write_plan = @write_plan, updated_at = now() WHERE id = @id;

-- name: EHREndpointRetire :one
UPDATE switchboard.ehr_endpoints SET enabled = false, retired_at = now(), updated_at = now() WHERE name = @name RETURNING id;

-- name: EHREndpointUnretire :exec
UPDATE switchboard.ehr_endpoints SET retired_at = NULL, updated_at = now() WHERE id = @id;

-- name: FHIRPushWakeHeld :execrows
-- Makes every waiting push of an endpoint due now, keeping their order:
-- River takes due jobs by scheduled_at, so the oldest is sent first.
UPDATE switchboard.river_job
SET state = 'available', scheduled_at = least(created_at, now())
WHERE kind = 'fhir_push' AND state IN ('scheduled', 'retryable') AND args @> jsonb_build_object('endpoint_id', @endpoint_id::bigint);

-- name: DeploymentID :one
SELECT id FROM switchboard.deployment;

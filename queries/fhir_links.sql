-- name: FHIRLinkGet :one
SELECT * FROM switchboard.fhir_links WHERE endpoint_id = @endpoint_id AND entity = @entity AND entity_id = @entity_id;

-- name: FHIRLinkUpsert :exec
INSERT INTO switchboard.fhir_links (endpoint_id, entity, entity_id, resource_type, resource_id, version_id, content_hash, owned_hashes, state, reason)
VALUES (@endpoint_id, @entity, @entity_id, @resource_type, @resource_id, sqlc.narg(version_id), sqlc.narg(content_hash),
        sqlc.narg(owned_hashes), 'pushed', NULL)
ON CONFLICT (endpoint_id, entity, entity_id) DO UPDATE
SET resource_type = excluded.resource_type, resource_id = excluded.resource_id, version_id = excluded.version_id,
    content_hash = excluded.content_hash, owned_hashes = excluded.owned_hashes, state = 'pushed', reason = NULL, pushed_at = now();

-- name: FHIRLinkFindByResource :one
SELECT * FROM switchboard.fhir_links
WHERE endpoint_id = @endpoint_id AND resource_type = @resource_type AND resource_id = @resource_id;

-- name: FHIROutboundGet :one
SELECT * FROM switchboard.fhir_outbound WHERE id = @id;

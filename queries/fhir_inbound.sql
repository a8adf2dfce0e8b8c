-- name: FHIRInboundInsert :one
-- Stores one pulled resource version; returns no row when that version was
-- already stored (dedupe on endpoint, type, id, versionId).
INSERT INTO switchboard.fhir_inbound (endpoint_id, resource_type, resource_id, version_id, last_updated, raw, state, reason, patient_id)
VALUES (@endpoint_id, @resource_type, @resource_id, @version_id, sqlc.narg(last_updated), @raw, @state, sqlc.narg(reason), sqlc.narg(patient_id))
ON CONFLICT (endpoint_id, resource_type, resource_id, version_id) DO NOTHING
RETURNING id;

-- name: FHIRInboundQuarantine :exec
-- A pulled resource whose value record_observation refused: kept, with the
-- reason (which names the rule, never the value).
UPDATE switchboard.fhir_inbound SET state = 'quarantined', reason = @reason::text WHERE id = @id;

-- name: FHIRInboundMatchedPatient :one
-- The local patient a pulled Patient resource was matched to (by identifier).
SELECT patient_id::bigint FROM switchboard.fhir_inbound
WHERE endpoint_id = @endpoint_id AND resource_type = 'Patient' AND resource_id = @resource_id
  AND patient_id IS NOT NULL
ORDER BY id DESC LIMIT 1;

-- name: FHIRInboundCountByState :many
SELECT resource_type, state, count(*)::bigint AS n FROM switchboard.fhir_inbound
WHERE endpoint_id = @endpoint_id GROUP BY resource_type, state ORDER BY resource_type, state;

-- name: FHIRPullCursorGet :one
SELECT * FROM switchboard.fhir_pull_cursors WHERE endpoint_id = @endpoint_id AND resource_type = @resource_type;

-- name: FHIRPullCursorAdvance :exec
INSERT INTO switchboard.fhir_pull_cursors AS c (endpoint_id, resource_type, cursor, last_pull_at)
VALUES (@endpoint_id, @resource_type, sqlc.narg(cursor), now())
ON CONFLICT (endpoint_id, resource_type) DO UPDATE
SET cursor = greatest(c.cursor, excluded.cursor), last_pull_at = now();

-- name: FHIREnqueuePull :one
SELECT coalesce(switchboard.fhir_enqueue_pull(@endpoint_id::bigint, @resource_type::text), 0)::bigint AS job_id;

-- name: FHIRSchedulePulls :one
SELECT switchboard.fhir_schedule_pulls()::integer AS n;

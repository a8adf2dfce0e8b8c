-- name: ObservationGet :one
SELECT * FROM switchboard.observations WHERE id = @id;

-- name: ObservationListByPatient :many
SELECT * FROM switchboard.observations WHERE patient_id = @patient_id ORDER BY effective_start, id;

-- name: ObservationKindList :many
SELECT * FROM switchboard.observation_kinds ORDER BY kind;

-- name: ObservationGetBySource :one
-- ObservationGetBySource finds an observation by its source's id: the
-- other half of a blood pressure reading.
SELECT * FROM switchboard.observations WHERE source = @source AND source_id = @source_id;

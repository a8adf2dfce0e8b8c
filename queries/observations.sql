-- name: ObservationGet :one
SELECT * FROM switchboard.observations WHERE id = @id;

-- name: ObservationListByPatient :many
SELECT * FROM switchboard.observations WHERE patient_id = @patient_id ORDER BY effective_start, id;

-- name: ObservationKindList :many
SELECT * FROM switchboard.observation_kinds ORDER BY kind;

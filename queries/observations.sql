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

-- name: ObservationBloodPressurePartners :many
-- ObservationBloodPressurePartners finds the observations of kind that can
-- be the other half of a wearable blood pressure reading: same patient,
-- source, device and effective times (HealthKit stores a correlation's two
-- samples with identical dates), not a half of a record_blood_pressure
-- reading. Two rows mean the pairing is ambiguous.
SELECT * FROM switchboard.observations
WHERE patient_id = @patient_id AND source = @source AND kind = @kind
  AND effective_start = @effective_start
  AND effective_end IS NOT DISTINCT FROM sqlc.narg(effective_end)::timestamptz
  AND device_id IS NOT DISTINCT FROM sqlc.narg(device_id)::bigint
  AND source_id NOT LIKE '%#8480-6' AND source_id NOT LIKE '%#8462-4'
ORDER BY id
LIMIT 2;

-- name: DeviceGet :one
SELECT * FROM switchboard.devices WHERE id = @id;

-- name: DeviceUpsert :one
-- Records a patient's device (a wearable) and returns its id. Called by the
-- wearables workers; a new or changed device is pushed with the next
-- observation that refers to it.
INSERT INTO switchboard.devices (patient_id, source, external_id, manufacturer, model, display_name)
VALUES (@patient_id, @source, @external_id, sqlc.narg(manufacturer), sqlc.narg(model), sqlc.narg(display_name))
ON CONFLICT (patient_id, source, external_id) DO UPDATE
SET manufacturer = coalesce(excluded.manufacturer, devices.manufacturer),
    model = coalesce(excluded.model, devices.model),
    display_name = coalesce(excluded.display_name, devices.display_name),
    updated_at = CASE WHEN (coalesce(excluded.manufacturer, devices.manufacturer),
                            coalesce(excluded.model, devices.model),
                            coalesce(excluded.display_name, devices.display_name))
                           IS DISTINCT FROM (devices.manufacturer, devices.model, devices.display_name)
                      THEN now() ELSE devices.updated_at END
RETURNING id;

-- name: DeviceListByPatient :many
SELECT * FROM switchboard.devices WHERE patient_id = @patient_id ORDER BY id;

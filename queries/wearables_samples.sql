-- name: SampleInsert :one
-- SampleInsert stores one normalized sample; a sample already stored (same
-- source and source id) inserts nothing and returns no row.
INSERT INTO switchboard.wearable_samples
    (connection_id, patient_id, kind, value, unit, effective_start, effective_end, utc_offset_seconds,
     source, source_id, device_id, interpretation, rejection_reason, high_frequency, upload_id,
     source_value, source_unit)
VALUES (@connection_id, @patient_id, @kind, @value, @unit, @effective_start, sqlc.narg(effective_end),
        sqlc.narg(utc_offset_seconds), @source, @source_id, sqlc.narg(device_id), sqlc.narg(interpretation),
        sqlc.narg(rejection_reason), @high_frequency, sqlc.narg(upload_id),
        sqlc.narg(source_value), sqlc.narg(source_unit))
ON CONFLICT (source, source_id) DO NOTHING
RETURNING id;

-- name: SampleUpdateValue :one
-- SampleUpdateValue replaces the value of a stored sample whose source
-- changed it (a day's step total grows during the day); returns its id when
-- something changed.
UPDATE switchboard.wearable_samples
SET value = @value, interpretation = sqlc.narg(interpretation), rejection_reason = sqlc.narg(rejection_reason),
    effective_end = sqlc.narg(effective_end), summarized = false,
    source_value = sqlc.narg(source_value), source_unit = sqlc.narg(source_unit)
WHERE source = @source AND source_id = @source_id AND status = 'final'
  AND (value <> @value OR effective_end IS DISTINCT FROM sqlc.narg(effective_end))
RETURNING id;

-- name: SamplesToPromote :many
-- SamplesToPromote lists samples that must become observations: valid, final,
-- not high-frequency, and new or changed since they were last recorded.
SELECT s.*, p.external_ref AS patient_external_ref
FROM switchboard.wearable_samples s JOIN switchboard.patients p ON p.id = s.patient_id
WHERE s.id = ANY (@ids::bigint[]) AND s.status = 'final' AND NOT s.high_frequency AND s.rejection_reason IS NULL
  -- Raw step intervals ({steps}) would double count phone and watch: never pushed.
  AND NOT (s.kind = 'steps' AND s.unit = '{steps}')
ORDER BY s.id;

-- name: SamplesOfUpload :many
SELECT id FROM switchboard.wearable_samples WHERE upload_id = @upload_id ORDER BY id;

-- name: SampleSetObservation :exec
UPDATE switchboard.wearable_samples SET observation_id = @observation_id WHERE id = @id;

-- name: ObservationSetWearableFields :exec
-- ObservationSetWearableFields stores what record_observation does not take.
UPDATE switchboard.observations
SET interpretation = sqlc.narg(interpretation), utc_offset_seconds = sqlc.narg(utc_offset_seconds),
    summary_period = sqlc.narg(summary_period), summary_count = sqlc.narg(summary_count),
    summary_min = sqlc.narg(summary_min), summary_max = sqlc.narg(summary_max)
WHERE id = @id
  AND (interpretation, utc_offset_seconds, summary_period, summary_count, summary_min, summary_max)
      IS DISTINCT FROM (sqlc.narg(interpretation), sqlc.narg(utc_offset_seconds), sqlc.narg(summary_period),
                        sqlc.narg(summary_count), sqlc.narg(summary_min), sqlc.narg(summary_max));

-- name: RecordObservation :one
-- RecordObservation calls the SQL API: idempotent by (source, source_id);
-- enqueues fhir_push in the same transaction when the observation is new or changed.
SELECT switchboard.record_observation(@patient_external_ref::text, @kind::text, @value::numeric, @unit::text,
    @effective_start::timestamptz, sqlc.narg(effective_end)::timestamptz, @source::text, @source_id::text,
    sqlc.narg(device_id)::bigint)::bigint;

-- name: SampleMarkEnteredInError :one
-- SampleMarkEnteredInError marks a sample deleted at its source and returns
-- what must be corrected.
UPDATE switchboard.wearable_samples
SET status = 'entered-in-error', summarized = false
WHERE source = @source AND source_id = @source_id AND status = 'final' AND connection_id = @connection_id
RETURNING id, observation_id, high_frequency, kind, effective_start;

-- name: SamplesInWindow :many
SELECT source_id FROM switchboard.wearable_samples
WHERE connection_id = @connection_id AND kind = @kind AND status = 'final'
  AND effective_start >= @window_start AND effective_start < @window_end AND source = @source;

-- name: ObservationMarkEnteredInError :one
SELECT switchboard.observation_mark_entered_in_error(@observation_id::bigint);

-- name: SamplesUnsummarizedPeriods :many
-- SamplesUnsummarizedPeriods lists the closed periods of a connection that
-- have high-frequency samples not yet folded into their summary.
SELECT DISTINCT s.kind,
       to_timestamp(floor(extract(epoch FROM s.effective_start) / @period_seconds::bigint) * @period_seconds::bigint)::timestamptz AS period_start
FROM switchboard.wearable_samples s
WHERE s.connection_id = @connection_id AND s.high_frequency AND NOT s.summarized
  AND to_timestamp((floor(extract(epoch FROM s.effective_start) / @period_seconds::bigint) + 1) * @period_seconds::bigint) <= now()
ORDER BY 1, 2;

-- name: SamplesSummarize :one
-- SamplesSummarize aggregates the valid final samples of one period.
SELECT count(*)::int AS n, coalesce(avg(value), 0)::numeric AS mean, coalesce(min(value), 0)::numeric AS min_value,
       coalesce(max(value), 0)::numeric AS max_value, max(utc_offset_seconds) AS utc_offset_seconds,
       coalesce(max(unit), '')::text AS unit
FROM switchboard.wearable_samples
WHERE connection_id = @connection_id AND kind = @kind AND high_frequency AND status = 'final'
  AND rejection_reason IS NULL AND effective_start >= @period_start AND effective_start < @period_end;

-- name: SamplesMarkSummarized :exec
UPDATE switchboard.wearable_samples SET summarized = true
WHERE connection_id = @connection_id AND kind = @kind AND high_frequency AND NOT summarized
  AND effective_start >= @period_start AND effective_start < @period_end;

-- name: ObservationFindBySource :one
SELECT id, status FROM switchboard.observations WHERE source = @source AND source_id = @source_id;

-- name: ConnectionsWithUnsummarized :many
SELECT DISTINCT connection_id FROM switchboard.wearable_samples WHERE high_frequency AND NOT summarized;

-- name: AppleUploadInsert :one
INSERT INTO switchboard.apple_health_uploads (connection_id, sample_count, new_count, deleted)
VALUES (@connection_id, @sample_count, @new_count, @deleted)
RETURNING id;

-- name: AppleUploadGetForUpdate :one
SELECT * FROM switchboard.apple_health_uploads WHERE id = @id FOR UPDATE;

-- name: AppleUploadMarkProcessed :exec
UPDATE switchboard.apple_health_uploads SET state = 'processed', processed_at = now() WHERE id = @id;

-- name: PatientContact :one
-- PatientContact is what the re-connect SMS needs: the patient's reference
-- and phone, and whether that phone opted out.
SELECT p.external_ref, p.phone_e164, coalesce(sc.opted_out, false)::boolean AS opted_out
FROM switchboard.patients p LEFT JOIN switchboard.sms_consent sc ON sc.phone_e164 = p.phone_e164
WHERE p.id = @id;

-- name: WearableEmitEvent :exec
SELECT switchboard.emit_event(@kind::text, @subject::text, @data::jsonb);

-- name: AppleUploadSetNewCount :exec
UPDATE switchboard.apple_health_uploads SET new_count = @new_count WHERE id = @id;

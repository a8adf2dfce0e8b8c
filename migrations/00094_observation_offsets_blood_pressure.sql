-- Observations keep their local UTC offset, and blood pressure is one
-- reading (issue 13).
--
-- 1. record_observation takes an optional trailing utc_offset_seconds: the
--    offset the measurement was taken in (a whole number of minutes within
--    ±14 hours). It is stored and the FHIR push writes the effective time in
--    it, so a daily step count keeps its local day. NULL keeps what is
--    stored (callers that set the offset afterwards keep working).
-- 2. A blood pressure reading is two observations, kinds
--    blood_pressure_systolic and blood_pressure_diastolic, of one patient
--    and source whose source_ids are '<reading>#8480-6' and
--    '<reading>#8462-4' — the convention the FHIR pull already uses for a
--    panel's components. Such a pair is pushed as one 85354-9 panel
--    Observation carrying the systolic observation's identifier; a component
--    recorded alone waits for the other. record_blood_pressure records both
--    in one call. Component pushes are queued for the systolic observation,
--    so one job pushes the panel.

-- +goose Up
DROP FUNCTION switchboard.record_observation(text, text, numeric, text, timestamptz, timestamptz, text, text, bigint);

-- record_observation records one measurement of a known patient and returns
-- its id. It is idempotent by (source, source_id): the same content returns
-- the same id and enqueues nothing; other values for the same source_id
-- (a day's step count that grew) update the row and push it again; a
-- source_id already used for another patient or kind raises 23505.
-- source 'app' may omit source_id: it is then derived from the patient, kind,
-- effective times and device, so the app re-recording a measurement of the
-- same time updates it. Every other source must give its own id.
-- utc_offset_seconds is the local offset of the measurement (NULL keeps the
-- stored one). A blood pressure component whose source_id ends in #8480-6
-- or #8462-4 is one half of a reading (see record_blood_pressure).
-- Observations whose source is an EHR ('ehr:<endpoint>') are never pushed.
-- +goose StatementBegin
CREATE FUNCTION switchboard.record_observation(
    patient_external_ref text,
    kind text,
    value numeric,
    unit text,
    effective_start timestamptz,
    effective_end timestamptz DEFAULT NULL,
    source text DEFAULT 'app',
    source_id text DEFAULT NULL,
    device_id bigint DEFAULT NULL,
    utc_offset_seconds integer DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_patient  bigint;
    v_kind     switchboard.observation_kinds;
    v_source   text := coalesce(record_observation.source, 'app');
    v_sid      text := record_observation.source_id;
    v_offset   integer := record_observation.utc_offset_seconds;
    v_old      switchboard.observations;
    v_id       bigint;
    v_push     bigint;
BEGIN
    IF patient_external_ref IS NULL OR btrim(patient_external_ref) = '' THEN
        RAISE EXCEPTION 'patient_external_ref is required' USING ERRCODE = '22023';
    END IF;
    SELECT p.id INTO v_patient FROM switchboard.patients p WHERE p.external_ref = patient_external_ref;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'patient_external_ref names no patient: call upsert_patient first' USING ERRCODE = '22023';
    END IF;
    IF kind IS NULL THEN
        RAISE EXCEPTION 'kind is required' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO v_kind FROM switchboard.observation_kinds k WHERE k.kind = record_observation.kind;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'kind % is not an observation kind (see switchboard.observation_kinds)', kind USING ERRCODE = '22023';
    END IF;
    IF unit IS NULL THEN
        RAISE EXCEPTION 'unit is required' USING ERRCODE = '22023';
    END IF;
    IF NOT unit = ANY (v_kind.units) THEN
        RAISE EXCEPTION 'unit % is not a UCUM unit of % (want one of %)', unit, kind, array_to_string(v_kind.units, ', ')
            USING ERRCODE = '22023';
    END IF;
    IF value IS NULL THEN
        RAISE EXCEPTION 'value is required' USING ERRCODE = '22023';
    END IF;
    -- The value itself is clinical data: not echoed.
    IF value < v_kind.min_value OR value > v_kind.max_value THEN
        RAISE EXCEPTION 'value is out of range for % (% to %)', kind, v_kind.min_value, v_kind.max_value
            USING ERRCODE = '22023';
    END IF;
    IF effective_start IS NULL THEN
        RAISE EXCEPTION 'effective_start is required' USING ERRCODE = '22023';
    END IF;
    IF effective_start = '-infinity' OR effective_start = 'infinity' THEN
        RAISE EXCEPTION 'effective_start must be a finite time' USING ERRCODE = '22023';
    END IF;
    IF effective_start > now() + interval '1 day' THEN
        RAISE EXCEPTION 'effective_start must not be in the future' USING ERRCODE = '22023';
    END IF;
    IF effective_end IS NOT NULL AND (effective_end < effective_start OR effective_end = 'infinity') THEN
        RAISE EXCEPTION 'effective_end must be a finite time not before effective_start' USING ERRCODE = '22023';
    END IF;
    -- FHIR writes an offset as ±hh:mm, and real ones lie within ±14 hours.
    IF v_offset IS NOT NULL AND (v_offset NOT BETWEEN -50400 AND 50400 OR v_offset % 60 <> 0) THEN
        RAISE EXCEPTION 'utc_offset_seconds must be a whole number of minutes from -50400 to 50400' USING ERRCODE = '22023';
    END IF;
    IF v_source !~ '^[a-z][a-z0-9_]{0,39}(:[a-z0-9][a-z0-9_.-]{0,62})?$' THEN
        RAISE EXCEPTION 'source must be app, a wearable source such as google_health, or ehr:<endpoint>' USING ERRCODE = '22023';
    END IF;
    IF device_id IS NOT NULL AND NOT EXISTS (
        SELECT FROM switchboard.devices d WHERE d.id = record_observation.device_id AND d.patient_id = v_patient) THEN
        RAISE EXCEPTION 'device_id % is not a device of this patient', device_id USING ERRCODE = '22023';
    END IF;
    IF v_sid IS NULL THEN
        IF v_source <> 'app' THEN
            RAISE EXCEPTION 'source_id is required for source %', v_source USING ERRCODE = '22023';
        END IF;
        v_sid := 'derived:' || encode(sha256(convert_to(jsonb_build_array(v_patient, kind,
            extract(epoch FROM effective_start), extract(epoch FROM effective_end), device_id)::text, 'UTF8')), 'hex');
    ELSIF btrim(v_sid) = '' OR char_length(v_sid) > 300 THEN
        RAISE EXCEPTION 'source_id must be 1 to 300 characters' USING ERRCODE = '22023';
    END IF;

    SELECT * INTO v_old FROM switchboard.observations o
    WHERE o.source = v_source AND o.source_id = v_sid FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO switchboard.observations AS o
            (patient_id, kind, value, unit, effective_start, effective_end, device_id, source, source_id, utc_offset_seconds)
        VALUES (v_patient, kind, value, unit, effective_start, effective_end, device_id, v_source, v_sid, v_offset)
        ON CONFLICT ON CONSTRAINT observations_source_source_id_key DO NOTHING
        RETURNING o.id INTO v_id;
        IF v_id IS NULL THEN
            SELECT * INTO v_old FROM switchboard.observations o
            WHERE o.source = v_source AND o.source_id = v_sid FOR UPDATE;
        END IF;
    END IF;
    IF v_id IS NULL THEN
        IF v_old.patient_id <> v_patient OR v_old.kind <> kind THEN
            RAISE EXCEPTION 'source_id was already used for another patient or kind' USING ERRCODE = '23505';
        END IF;
        v_offset := coalesce(v_offset, v_old.utc_offset_seconds);
        IF v_old.value = value AND v_old.unit = unit AND v_old.effective_start = effective_start
           AND v_old.effective_end IS NOT DISTINCT FROM effective_end
           AND v_old.device_id IS NOT DISTINCT FROM device_id
           AND v_old.utc_offset_seconds IS NOT DISTINCT FROM v_offset THEN
            RETURN v_old.id;
        END IF;
        UPDATE switchboard.observations o
        SET value = record_observation.value, unit = record_observation.unit,
            effective_start = record_observation.effective_start, effective_end = record_observation.effective_end,
            device_id = record_observation.device_id, utc_offset_seconds = v_offset, updated_at = now()
        WHERE o.id = v_old.id;
        v_id := v_old.id;
    END IF;
    IF v_source NOT LIKE 'ehr:%' THEN
        -- Either half of a blood pressure reading pushes the reading: the
        -- panel carries the systolic observation's identifier. A diastolic
        -- recorded before its systolic queues itself and waits for it.
        v_push := v_id;
        IF kind = 'blood_pressure_diastolic' AND v_sid LIKE '%#8462-4' THEN
            SELECT o.id INTO v_push FROM switchboard.observations o
            WHERE o.source = v_source AND o.source_id = left(v_sid, -7) || '#8480-6'
              AND o.patient_id = v_patient AND o.kind = 'blood_pressure_systolic';
            v_push := coalesce(v_push, v_id);
        END IF;
        PERFORM switchboard.fhir_enqueue_push('observation', v_push, 'Observation');
    END IF;
    RETURN v_id;
END
$$;
-- +goose StatementEnd

-- record_blood_pressure records one blood pressure reading — its systolic
-- and diastolic values in mm[Hg] — as the two observations of a reading
-- (source_ids '<source_id>#8480-6' and '<source_id>#8462-4'; for source
-- 'app' without a source_id, one derived from the patient, times and
-- device) and returns the systolic observation's id, whose identifier the
-- pushed 85354-9 panel carries. Idempotent like record_observation; bad
-- input raises 22023 naming the field (systolic or diastolic for a value).
-- +goose StatementBegin
CREATE FUNCTION switchboard.record_blood_pressure(
    patient_external_ref text,
    systolic numeric,
    diastolic numeric,
    effective_start timestamptz,
    effective_end timestamptz DEFAULT NULL,
    source text DEFAULT 'app',
    source_id text DEFAULT NULL,
    device_id bigint DEFAULT NULL,
    utc_offset_seconds integer DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_source text := coalesce(record_blood_pressure.source, 'app');
    v_sid    text := record_blood_pressure.source_id;
    v_id     bigint;
BEGIN
    IF systolic IS NULL THEN
        RAISE EXCEPTION 'systolic is required' USING ERRCODE = '22023';
    END IF;
    IF diastolic IS NULL THEN
        RAISE EXCEPTION 'diastolic is required' USING ERRCODE = '22023';
    END IF;
    IF v_sid IS NULL AND v_source = 'app' AND effective_start IS NOT NULL THEN
        v_sid := 'derived:' || encode(sha256(convert_to(jsonb_build_array(patient_external_ref, 'blood_pressure',
            extract(epoch FROM effective_start), extract(epoch FROM effective_end), device_id)::text, 'UTF8')), 'hex');
    END IF;
    IF v_sid IS NOT NULL AND (btrim(v_sid) = '' OR char_length(v_sid) > 292) THEN
        RAISE EXCEPTION 'source_id must be 1 to 292 characters' USING ERRCODE = '22023';
    END IF;
    BEGIN
        v_id := switchboard.record_observation(patient_external_ref, 'blood_pressure_systolic', systolic, 'mm[Hg]',
            effective_start, effective_end, v_source, v_sid || '#8480-6', device_id, utc_offset_seconds);
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION '%', replace(SQLERRM, 'value is', 'systolic is') USING ERRCODE = '22023';
    END;
    BEGIN
        PERFORM switchboard.record_observation(patient_external_ref, 'blood_pressure_diastolic', diastolic, 'mm[Hg]',
            effective_start, effective_end, v_source, v_sid || '#8462-4', device_id, utc_offset_seconds);
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION '%', replace(SQLERRM, 'value is', 'diastolic is') USING ERRCODE = '22023';
    END;
    RETURN v_id;
END
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION switchboard.record_observation(text, text, numeric, text, timestamptz, timestamptz, text, text, bigint, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.record_blood_pressure(text, numeric, numeric, timestamptz, timestamptz, text, text, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    switchboard.record_observation(text, text, numeric, text, timestamptz, timestamptz, text, text, bigint, integer),
    switchboard.record_blood_pressure(text, numeric, numeric, timestamptz, timestamptz, text, text, bigint, integer)
    TO switchboard_app, switchboard_worker;

SELECT switchboard.apply_role_grants();
SELECT switchboard.secure_definer_functions();

-- +goose Down
DROP FUNCTION switchboard.record_blood_pressure(text, numeric, numeric, timestamptz, timestamptz, text, text, bigint, integer);
DROP FUNCTION switchboard.record_observation(text, text, numeric, text, timestamptz, timestamptz, text, text, bigint, integer);
-- The record_observation of 00020.
-- +goose StatementBegin
CREATE FUNCTION switchboard.record_observation(
    patient_external_ref text,
    kind text,
    value numeric,
    unit text,
    effective_start timestamptz,
    effective_end timestamptz DEFAULT NULL,
    source text DEFAULT 'app',
    source_id text DEFAULT NULL,
    device_id bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_patient  bigint;
    v_kind     switchboard.observation_kinds;
    v_source   text := coalesce(record_observation.source, 'app');
    v_sid      text := record_observation.source_id;
    v_old      switchboard.observations;
    v_id       bigint;
BEGIN
    IF patient_external_ref IS NULL OR btrim(patient_external_ref) = '' THEN
        RAISE EXCEPTION 'patient_external_ref is required' USING ERRCODE = '22023';
    END IF;
    SELECT p.id INTO v_patient FROM switchboard.patients p WHERE p.external_ref = patient_external_ref;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'patient_external_ref names no patient: call upsert_patient first' USING ERRCODE = '22023';
    END IF;
    IF kind IS NULL THEN
        RAISE EXCEPTION 'kind is required' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO v_kind FROM switchboard.observation_kinds k WHERE k.kind = record_observation.kind;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'kind % is not an observation kind (see switchboard.observation_kinds)', kind USING ERRCODE = '22023';
    END IF;
    IF unit IS NULL THEN
        RAISE EXCEPTION 'unit is required' USING ERRCODE = '22023';
    END IF;
    IF NOT unit = ANY (v_kind.units) THEN
        RAISE EXCEPTION 'unit % is not a UCUM unit of % (want one of %)', unit, kind, array_to_string(v_kind.units, ', ')
            USING ERRCODE = '22023';
    END IF;
    IF value IS NULL THEN
        RAISE EXCEPTION 'value is required' USING ERRCODE = '22023';
    END IF;
    -- The value itself is clinical data: not echoed.
    IF value < v_kind.min_value OR value > v_kind.max_value THEN
        RAISE EXCEPTION 'value is out of range for % (% to %)', kind, v_kind.min_value, v_kind.max_value
            USING ERRCODE = '22023';
    END IF;
    IF effective_start IS NULL THEN
        RAISE EXCEPTION 'effective_start is required' USING ERRCODE = '22023';
    END IF;
    IF effective_start = '-infinity' OR effective_start = 'infinity' THEN
        RAISE EXCEPTION 'effective_start must be a finite time' USING ERRCODE = '22023';
    END IF;
    IF effective_start > now() + interval '1 day' THEN
        RAISE EXCEPTION 'effective_start must not be in the future' USING ERRCODE = '22023';
    END IF;
    IF effective_end IS NOT NULL AND (effective_end < effective_start OR effective_end = 'infinity') THEN
        RAISE EXCEPTION 'effective_end must be a finite time not before effective_start' USING ERRCODE = '22023';
    END IF;
    IF v_source !~ '^[a-z][a-z0-9_]{0,39}(:[a-z0-9][a-z0-9_.-]{0,62})?$' THEN
        RAISE EXCEPTION 'source must be app, a wearable source such as google_health, or ehr:<endpoint>' USING ERRCODE = '22023';
    END IF;
    IF device_id IS NOT NULL AND NOT EXISTS (
        SELECT FROM switchboard.devices d WHERE d.id = record_observation.device_id AND d.patient_id = v_patient) THEN
        RAISE EXCEPTION 'device_id % is not a device of this patient', device_id USING ERRCODE = '22023';
    END IF;
    IF v_sid IS NULL THEN
        IF v_source <> 'app' THEN
            RAISE EXCEPTION 'source_id is required for source %', v_source USING ERRCODE = '22023';
        END IF;
        v_sid := 'derived:' || encode(sha256(convert_to(jsonb_build_array(v_patient, kind,
            extract(epoch FROM effective_start), extract(epoch FROM effective_end), device_id)::text, 'UTF8')), 'hex');
    ELSIF btrim(v_sid) = '' OR char_length(v_sid) > 300 THEN
        RAISE EXCEPTION 'source_id must be 1 to 300 characters' USING ERRCODE = '22023';
    END IF;

    SELECT * INTO v_old FROM switchboard.observations o
    WHERE o.source = v_source AND o.source_id = v_sid FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO switchboard.observations AS o
            (patient_id, kind, value, unit, effective_start, effective_end, device_id, source, source_id)
        VALUES (v_patient, kind, value, unit, effective_start, effective_end, device_id, v_source, v_sid)
        ON CONFLICT ON CONSTRAINT observations_source_source_id_key DO NOTHING
        RETURNING o.id INTO v_id;
        IF v_id IS NULL THEN
            SELECT * INTO v_old FROM switchboard.observations o
            WHERE o.source = v_source AND o.source_id = v_sid FOR UPDATE;
        END IF;
    END IF;
    IF v_id IS NULL THEN
        IF v_old.patient_id <> v_patient OR v_old.kind <> kind THEN
            RAISE EXCEPTION 'source_id was already used for another patient or kind' USING ERRCODE = '23505';
        END IF;
        IF v_old.value = value AND v_old.unit = unit AND v_old.effective_start = effective_start
           AND v_old.effective_end IS NOT DISTINCT FROM effective_end
           AND v_old.device_id IS NOT DISTINCT FROM device_id THEN
            RETURN v_old.id;
        END IF;
        UPDATE switchboard.observations o
        SET value = record_observation.value, unit = record_observation.unit,
            effective_start = record_observation.effective_start, effective_end = record_observation.effective_end,
            device_id = record_observation.device_id, updated_at = now()
        WHERE o.id = v_old.id;
        v_id := v_old.id;
    END IF;
    IF v_source NOT LIKE 'ehr:%' THEN
        PERFORM switchboard.fhir_enqueue_push('observation', v_id, 'Observation');
    END IF;
    RETURN v_id;
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION switchboard.record_observation(text, text, numeric, text, timestamptz, timestamptz, text, text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION switchboard.record_observation(text, text, numeric, text, timestamptz, timestamptz, text, text, bigint)
    TO switchboard_app, switchboard_worker;
SELECT switchboard.apply_role_grants();
SELECT switchboard.secure_definer_functions();

-- The bench's own objects, created in the throwaway bench database only.

CREATE SCHEMA bench;

-- domain stands for an app's own table: the row an app writes in the same
-- transaction as its switchboard.send_sms call (about 300 bytes).
CREATE TABLE bench.domain (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_ref text NOT NULL,
    kind        text NOT NULL,
    payload     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- send_sms_00014 is switchboard.send_sms as migration 00014 defined it (with
-- 00011's insert_job): a NOTIFY in every transaction and a second UPDATE of
-- the message for its job id. Frozen here as the "before" of the enqueue
-- comparison; it writes the same tables as the real function.
CREATE FUNCTION bench.insert_job_00011(p_kind text, p_args jsonb, p_scheduled_at timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_kind  switchboard.job_kinds;
    v_state switchboard.river_job_state := 'available';
    v_id    bigint;
BEGIN
    SELECT * INTO v_kind FROM switchboard.job_kinds WHERE kind = p_kind;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'kind: % is not a registered job kind', p_kind USING ERRCODE = '22023';
    END IF;
    IF p_scheduled_at IS NOT NULL AND p_scheduled_at > now() THEN
        v_state := 'scheduled';
    END IF;
    INSERT INTO switchboard.river_job (kind, args, queue, priority, max_attempts, state, scheduled_at)
    VALUES (p_kind, p_args, v_kind.queue, v_kind.priority, v_kind.max_attempts, v_state,
            coalesce(greatest(p_scheduled_at, now()), now()))
    RETURNING id INTO v_id;
    IF v_state = 'available' THEN
        PERFORM pg_notify('switchboard.river_insert', json_build_object('queue', v_kind.queue)::text);
    END IF;
    RETURN v_id;
END
$$;

CREATE FUNCTION bench.send_sms_00014(
    idempotency_key text,
    to_e164 text,
    body text,
    patient_ref text DEFAULT NULL,
    not_before timestamptz DEFAULT NULL,
    not_after timestamptz DEFAULT NULL,
    time_zone text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_hash     bytea;
    v_existing switchboard.messages;
    v_id       bigint;
    v_job_id   bigint;
BEGIN
    IF idempotency_key IS NULL OR btrim(idempotency_key) = '' THEN
        RAISE EXCEPTION 'idempotency_key is required' USING ERRCODE = '22023';
    END IF;
    IF char_length(idempotency_key) > 200 THEN
        RAISE EXCEPTION 'idempotency_key must be at most 200 characters' USING ERRCODE = '22023';
    END IF;
    IF to_e164 IS NULL THEN
        RAISE EXCEPTION 'to_e164 is required' USING ERRCODE = '22023';
    END IF;
    IF to_e164 !~ '^\+[1-9][0-9]{6,14}$' THEN
        RAISE EXCEPTION 'to_e164 must be + followed by 7 to 15 digits' USING ERRCODE = '22023';
    END IF;
    IF body IS NULL THEN
        RAISE EXCEPTION 'body is required' USING ERRCODE = '22023';
    END IF;
    IF char_length(body) < 1 OR char_length(body) > 1600 THEN
        RAISE EXCEPTION 'body must be 1 to 1600 characters' USING ERRCODE = '22023';
    END IF;
    IF patient_ref IS NOT NULL AND (btrim(patient_ref) = '' OR char_length(patient_ref) > 200) THEN
        RAISE EXCEPTION 'patient_ref must be 1 to 200 characters when given' USING ERRCODE = '22023';
    END IF;
    IF not_before IS NOT NULL AND not_after IS NOT NULL AND not_after <= not_before THEN
        RAISE EXCEPTION 'not_after must be later than not_before' USING ERRCODE = '22023';
    END IF;
    IF time_zone IS NOT NULL AND NOT EXISTS (SELECT FROM pg_timezone_names WHERE name = send_sms_00014.time_zone) THEN
        RAISE EXCEPTION 'time_zone must be an IANA time zone name such as America/New_York' USING ERRCODE = '22023';
    END IF;
    v_hash := sha256(convert_to(jsonb_build_array(
        to_e164, body, patient_ref,
        extract(epoch FROM not_before), extract(epoch FROM not_after))::text
        || coalesce('|' || time_zone, ''), 'UTF8'));
    INSERT INTO switchboard.messages AS m
        (idempotency_key, content_hash, to_e164, body, patient_ref, not_before, not_after, time_zone)
    VALUES (send_sms_00014.idempotency_key, v_hash, send_sms_00014.to_e164, send_sms_00014.body,
            send_sms_00014.patient_ref, send_sms_00014.not_before, send_sms_00014.not_after, send_sms_00014.time_zone)
    ON CONFLICT ON CONSTRAINT messages_idempotency_key_key DO NOTHING
    RETURNING m.id INTO v_id;
    IF v_id IS NULL THEN
        SELECT * INTO v_existing FROM switchboard.messages m WHERE m.idempotency_key = send_sms_00014.idempotency_key;
        IF v_existing.content_hash <> v_hash THEN
            RAISE EXCEPTION 'idempotency_key was already used for a message with other content'
                USING ERRCODE = '23505';
        END IF;
        RETURN v_existing.id;
    END IF;
    IF not_after IS NOT NULL AND not_after <= now() THEN
        RAISE EXCEPTION 'not_after must be in the future' USING ERRCODE = '22023';
    END IF;
    v_job_id := bench.insert_job_00011('sms_send', jsonb_build_object('message_id', v_id), not_before);
    UPDATE switchboard.messages SET job_id = v_job_id WHERE id = v_id;
    RETURN v_id;
END
$$;

-- message_only and job_only are the two halves of switchboard.send_sms, for
-- the enqueue scenario's breakdown of where its time goes: the message row
-- (checks, hash, insert with its idempotency key) without a job, and the
-- job row (as send_sms inserts it, without a NOTIFY) without a message.
CREATE FUNCTION bench.message_only(idempotency_key text, to_e164 text, body text, patient_ref text)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_hash bytea;
    v_id   bigint;
BEGIN
    IF idempotency_key IS NULL OR btrim(idempotency_key) = '' OR char_length(idempotency_key) > 200 THEN
        RAISE EXCEPTION 'idempotency_key' USING ERRCODE = '22023';
    END IF;
    IF to_e164 IS NULL OR to_e164 !~ '^\+[1-9][0-9]{6,14}$' THEN
        RAISE EXCEPTION 'to_e164' USING ERRCODE = '22023';
    END IF;
    IF body IS NULL OR char_length(body) < 1 OR char_length(body) > 1600 THEN
        RAISE EXCEPTION 'body' USING ERRCODE = '22023';
    END IF;
    v_hash := sha256(convert_to(jsonb_build_array(to_e164, body, patient_ref, NULL::numeric, NULL::numeric)::text, 'UTF8'));
    INSERT INTO switchboard.messages AS m (idempotency_key, content_hash, to_e164, body, patient_ref, job_id)
    VALUES (message_only.idempotency_key, v_hash, message_only.to_e164, message_only.body, message_only.patient_ref,
            nextval('switchboard.river_job_id_seq'))
    ON CONFLICT ON CONSTRAINT messages_idempotency_key_key DO NOTHING
    RETURNING m.id INTO v_id;
    RETURN v_id;
END
$$;

CREATE FUNCTION bench.job_only(p_seq bigint)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO switchboard.river_job (id, kind, args, queue, priority, max_attempts, state, scheduled_at)
    SELECT nextval('switchboard.river_job_id_seq'), k.kind, jsonb_build_object('message_id', p_seq), 'bench_idle',
           k.priority, k.max_attempts, 'available', now()
    FROM switchboard.job_kinds k WHERE k.kind = 'sms_send'
    RETURNING id INTO v_id;
    RETURN v_id;
END
$$;

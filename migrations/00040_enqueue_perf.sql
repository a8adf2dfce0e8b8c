-- Enqueue performance: what an app transaction pays for switchboard.send_sms
-- (and every other insert_job caller), measured by `switchboard bench
-- --scenarios enqueue` (internal/bench documents the numbers). Three costs
-- are removed; every guarantee stays: the job commits with the caller's
-- transaction or not at all, the idempotency rules and errors are unchanged,
-- and River is still woken on its literal channel.
--
-- 1. The wake-up NOTIFY is throttled. A transaction that has called
--    pg_notify takes a cluster-wide lock before it commits and holds it until
--    its commit record is flushed, so notifying transactions commit one after
--    another instead of sharing an fsync (group commit). A NOTIFY in every
--    send_sms transaction halved enqueue throughput at 16 clients. Now a
--    queue is notified at most once per cooldown (5 ms), across all sessions
--    — River's own inserts throttle the same way, per client, to one per
--    FetchCooldown. The throttle's clock is an unlogged sequence: setval is
--    not transactional and takes no lock that lasts, so a long app
--    transaction blocks nobody. A job whose transaction skipped the NOTIFY is
--    fetched on the next one (within about the cooldown under load) or at
--    the worker's FetchPollInterval at the end of a burst. Nothing waits on a
--    notification for correctness: they only shorten pickup.
--    switchboard.wakeup_cooldown_ms (a setting: ALTER DATABASE … SET, or per
--    session) overrides the cooldown; 0 notifies in every transaction, 'off'
--    never notifies, for River clients in PollOnly mode (PgBouncer in
--    transaction mode).
-- 2. send_sms writes the message row once: the job id is taken from River's
--    sequence first, so messages.job_id is set by the INSERT and no UPDATE
--    (a second row version and a dead tuple per message) follows.
-- 3. send_sms runs one SQL statement: the message and its job are written
--    by one INSERT … WITH, the job's defaults read from job_kinds in it.
--    The 00014 version handed six statements to the executor (the time-zone
--    check, the message, a nested insert_job call, its job_kinds lookup, the
--    job, the UPDATE) and went through three SECURITY DEFINER calls; each
--    executor start costs about what a small INSERT does.
--
-- River's GIN indexes on args and metadata stay: `switchboard bench` measured
-- send_sms, River's no-op worker and the send path with them narrowed (a
-- partial args index for the FHIR deduplication, no metadata index), and
-- the differences stayed within the run's noise (its enqueue and e2e
-- scenarios keep that variant for re-measuring). River's schema is left as
-- River ships it.
--
-- Queues get their own throttle clock (river_wakeup_<queue>); a queue without
-- one shares river_wakeup__other, which remembers the last queue it notified,
-- so a rare queue is never silenced by a busy one. A migration that adds a
-- queue should add its clock.

-- +goose Up
CREATE UNLOGGED SEQUENCE switchboard.river_wakeup_sms MINVALUE 0 START WITH 0;
CREATE UNLOGGED SEQUENCE switchboard.river_wakeup_fhir MINVALUE 0 START WITH 0;
CREATE UNLOGGED SEQUENCE switchboard.river_wakeup_wearables MINVALUE 0 START WITH 0;
CREATE UNLOGGED SEQUENCE switchboard.river_wakeup_inbound MINVALUE 0 START WITH 0;
CREATE UNLOGGED SEQUENCE switchboard.river_wakeup_maintenance MINVALUE 0 START WITH 0;
CREATE UNLOGGED SEQUENCE switchboard.river_wakeup__other MINVALUE 0 START WITH 0;

-- wake_river notifies River's listeners that p_queue has an available job,
-- unless that was done less than the cooldown ago, and reports whether it
-- notified. A clock holds the time of its last notification in milliseconds
-- times 1024 plus a 10-bit tag of the queue notified. Two sessions racing
-- past the check both notify: harmless. Internal, and deliberately neither
-- SECURITY DEFINER nor SET: it runs as the API function that calls it (with
-- that function's search_path), and callers assign its result rather than
-- PERFORM it, so PL/pgSQL evaluates the call without starting an executor.
-- +goose StatementBegin
CREATE FUNCTION switchboard.wake_river(p_queue text)
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    v_setting  text := pg_catalog.current_setting('switchboard.wakeup_cooldown_ms', true);
    v_cooldown bigint := 5;
    v_clock    regclass;
    v_now      bigint;
    v_tag      bigint;
    v_last     bigint;
BEGIN
    IF v_setting = 'off' THEN
        RETURN false;
    ELSIF v_setting ~ '^[0-9]{1,6}$' THEN
        v_cooldown := v_setting::bigint;
    END IF;
    IF v_cooldown > 0 THEN
        v_clock := coalesce(pg_catalog.to_regclass('switchboard.' || pg_catalog.quote_ident('river_wakeup_' || p_queue)),
                            'switchboard.river_wakeup__other'::regclass);
        v_now := floor(extract(epoch FROM pg_catalog.clock_timestamp()) * 1000)::bigint;
        v_tag := pg_catalog.hashtext(p_queue) & 1023;
        v_last := coalesce(pg_catalog.pg_sequence_last_value(v_clock), 0);
        -- A clock that went backwards notifies rather than going silent.
        IF v_last % 1024 = v_tag AND v_now - v_last / 1024 >= 0 AND v_now - v_last / 1024 < v_cooldown THEN
            RETURN false;
        END IF;
        v_last := pg_catalog.setval(v_clock, v_now * 1024 + v_tag);
    END IF;
    PERFORM pg_catalog.pg_notify('switchboard.river_insert', pg_catalog.json_build_object('queue', p_queue)::text);
    RETURN true;
END
$$;
-- +goose StatementEnd

-- insert_job keeps its signature and contract; only the wake-up changed.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION switchboard.insert_job(p_kind text, p_args jsonb, p_scheduled_at timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_kind  switchboard.job_kinds;
    v_state switchboard.river_job_state := 'available';
    v_id    bigint;
    v_woke  boolean;
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
        v_woke := switchboard.wake_river(v_kind.queue);
    END IF;
    RETURN v_id;
END
$$;
-- +goose StatementEnd

-- send_sms: same signature, checks, errors and idempotency as in 00014. The
-- message and its job are written by one statement: the job id comes from
-- River's sequence inside the message INSERT (messages.job_id is set once,
-- no UPDATE follows), and the job takes sms_send's defaults from job_kinds
-- in the same statement. A replayed key wastes one sequence value, nothing
-- else. Every statement PL/pgSQL must hand to the executor costs about as
-- much as a small INSERT, so the checks are plain expressions and the body
-- runs one such statement on the way in.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION switchboard.send_sms(
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
    v_queue    text;
    v_state    switchboard.river_job_state;
    v_woke     boolean;
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
    IF time_zone IS NOT NULL THEN
        IF NOT EXISTS (SELECT FROM pg_timezone_names WHERE name = send_sms.time_zone) THEN
            RAISE EXCEPTION 'time_zone must be an IANA time zone name such as America/New_York' USING ERRCODE = '22023';
        END IF;
    END IF;

    -- Times enter the hash as epoch numbers: a timestamptz rendered as text
    -- depends on the session's TimeZone. time_zone joins the hash only when
    -- given, so keys used before it existed keep matching.
    v_hash := sha256(convert_to(jsonb_build_array(
        to_e164, body, patient_ref,
        extract(epoch FROM not_before), extract(epoch FROM not_after))::text
        || coalesce('|' || time_zone, ''), 'UTF8'));

    WITH m AS (
        INSERT INTO switchboard.messages AS m
            (idempotency_key, content_hash, to_e164, body, patient_ref, not_before, not_after, time_zone, job_id)
        VALUES (send_sms.idempotency_key, v_hash, send_sms.to_e164, send_sms.body, send_sms.patient_ref,
                send_sms.not_before, send_sms.not_after, send_sms.time_zone, nextval('switchboard.river_job_id_seq'))
        ON CONFLICT ON CONSTRAINT messages_idempotency_key_key DO NOTHING
        RETURNING m.id, m.job_id
    ), j AS (
        INSERT INTO switchboard.river_job (id, kind, args, queue, priority, max_attempts, state, scheduled_at)
        SELECT m.job_id, k.kind, jsonb_build_object('message_id', m.id), k.queue, k.priority, k.max_attempts,
               CASE WHEN send_sms.not_before > now() THEN 'scheduled' ELSE 'available' END::switchboard.river_job_state,
               coalesce(greatest(send_sms.not_before, now()), now())
        FROM m JOIN switchboard.job_kinds k ON k.kind = 'sms_send'
        RETURNING river_job.queue, river_job.state
    )
    SELECT m.id, j.queue, j.state INTO v_id, v_queue, v_state FROM m LEFT JOIN j ON true;

    IF v_id IS NULL THEN
        SELECT * INTO v_existing FROM switchboard.messages m WHERE m.idempotency_key = send_sms.idempotency_key;
        IF v_existing.content_hash <> v_hash THEN
            RAISE EXCEPTION 'idempotency_key was already used for a message with other content'
                USING ERRCODE = '23505';
        END IF;
        RETURN v_existing.id;
    END IF;
    IF v_queue IS NULL THEN
        RAISE EXCEPTION 'kind: sms_send is not a registered job kind' USING ERRCODE = '22023';
    END IF;

    IF not_after IS NOT NULL AND not_after <= now() THEN
        RAISE EXCEPTION 'not_after must be in the future' USING ERRCODE = '22023';
    END IF;

    IF v_state = 'available' THEN
        v_woke := switchboard.wake_river(v_queue);
    END IF;
    RETURN v_id;
END
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION switchboard.wake_river(text) FROM PUBLIC;

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION switchboard.send_sms(
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
    IF time_zone IS NOT NULL AND NOT EXISTS (SELECT FROM pg_timezone_names WHERE name = send_sms.time_zone) THEN
        RAISE EXCEPTION 'time_zone must be an IANA time zone name such as America/New_York' USING ERRCODE = '22023';
    END IF;

    v_hash := sha256(convert_to(jsonb_build_array(
        to_e164, body, patient_ref,
        extract(epoch FROM not_before), extract(epoch FROM not_after))::text
        || coalesce('|' || time_zone, ''), 'UTF8'));

    INSERT INTO switchboard.messages AS m
        (idempotency_key, content_hash, to_e164, body, patient_ref, not_before, not_after, time_zone)
    VALUES (send_sms.idempotency_key, v_hash, send_sms.to_e164, send_sms.body,
            send_sms.patient_ref, send_sms.not_before, send_sms.not_after, send_sms.time_zone)
    ON CONFLICT ON CONSTRAINT messages_idempotency_key_key DO NOTHING
    RETURNING m.id INTO v_id;

    IF v_id IS NULL THEN
        SELECT * INTO v_existing FROM switchboard.messages m WHERE m.idempotency_key = send_sms.idempotency_key;
        IF v_existing.content_hash <> v_hash THEN
            RAISE EXCEPTION 'idempotency_key was already used for a message with other content'
                USING ERRCODE = '23505';
        END IF;
        RETURN v_existing.id;
    END IF;

    IF not_after IS NOT NULL AND not_after <= now() THEN
        RAISE EXCEPTION 'not_after must be in the future' USING ERRCODE = '22023';
    END IF;

    v_job_id := switchboard.insert_job('sms_send', jsonb_build_object('message_id', v_id), not_before);
    UPDATE switchboard.messages SET job_id = v_job_id WHERE id = v_id;
    RETURN v_id;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION switchboard.insert_job(p_kind text, p_args jsonb, p_scheduled_at timestamptz DEFAULT NULL)
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
-- +goose StatementEnd

DROP FUNCTION switchboard.wake_river(text);
DROP SEQUENCE switchboard.river_wakeup__other;
DROP SEQUENCE switchboard.river_wakeup_maintenance;
DROP SEQUENCE switchboard.river_wakeup_inbound;
DROP SEQUENCE switchboard.river_wakeup_wearables;
DROP SEQUENCE switchboard.river_wakeup_fhir;
DROP SEQUENCE switchboard.river_wakeup_sms;

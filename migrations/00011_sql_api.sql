-- The SQL API that app services call inside their own transactions, the
-- internal helpers it shares with workers, and the dead-letter trigger.
--
-- Every API function is SECURITY DEFINER with a fixed search_path, not STRICT
-- (a null required argument raises), raises SQLSTATE 22023 naming the field
-- for bad input and 23505 for a reused idempotency key with other content.
-- Because a raise aborts the caller's statement, nothing is ever half-written.

-- +goose Up

-- emit_event records an event to the app and wakes listeners on
-- switchboard_events with its id. Internal: called by the API, workers and triggers.
-- +goose StatementBegin
CREATE FUNCTION switchboard.emit_event(p_kind text, p_subject text, p_data jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO switchboard.events (kind, subject, data)
    VALUES (p_kind, p_subject, coalesce(p_data, '{}'))
    RETURNING id INTO v_id;
    PERFORM pg_notify('switchboard_events', v_id::text);
    RETURN v_id;
END
$$;
-- +goose StatementEnd

-- insert_job inserts a River job with its kind's defaults from job_kinds and
-- wakes River on the literal channel of the switchboard schema (never
-- current_schema(): the caller's search_path is its own). Internal.
-- +goose StatementBegin
CREATE FUNCTION switchboard.insert_job(p_kind text, p_args jsonb, p_scheduled_at timestamptz DEFAULT NULL)
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

-- +goose StatementBegin
CREATE FUNCTION switchboard.send_sms(
    idempotency_key text,
    to_e164 text,
    body text,
    patient_ref text DEFAULT NULL,
    not_before timestamptz DEFAULT NULL,
    not_after timestamptz DEFAULT NULL)
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

    -- Times enter the hash as epoch numbers: a timestamptz rendered as text
    -- depends on the session's TimeZone.
    v_hash := sha256(convert_to(jsonb_build_array(
        to_e164, body, patient_ref,
        extract(epoch FROM not_before), extract(epoch FROM not_after))::text, 'UTF8'));

    INSERT INTO switchboard.messages AS m
        (idempotency_key, content_hash, to_e164, body, patient_ref, not_before, not_after)
    VALUES (send_sms.idempotency_key, v_hash, send_sms.to_e164, send_sms.body,
            send_sms.patient_ref, send_sms.not_before, send_sms.not_after)
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
CREATE FUNCTION switchboard.cancel_sms(message_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_msg switchboard.messages;
BEGIN
    IF message_id IS NULL THEN
        RAISE EXCEPTION 'message_id is required' USING ERRCODE = '22023';
    END IF;
    -- The worker holds this row lock while it moves a message to sending, so
    -- a message is either cancelled here or handed to a provider, never both.
    SELECT * INTO v_msg FROM switchboard.messages m WHERE m.id = cancel_sms.message_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'message_id % does not exist', cancel_sms.message_id USING ERRCODE = '22023';
    END IF;
    IF v_msg.status = 'cancelled' THEN
        RETURN true;
    END IF;
    IF v_msg.status <> 'queued' OR EXISTS (
        SELECT FROM switchboard.message_attempts a
        WHERE a.message_id = v_msg.id AND (a.outcome IS NULL OR a.outcome IN ('accepted', 'ambiguous', 'reconciled_found'))) THEN
        RETURN false;
    END IF;
    UPDATE switchboard.messages SET status = 'cancelled', final_at = now(), updated_at = now()
    WHERE id = v_msg.id;
    -- A job that has not started is cancelled too; the marker keeps it out of
    -- the dead letters. A running job finds the message cancelled and ends.
    UPDATE switchboard.river_job
    SET state = 'cancelled', finalized_at = now(),
        metadata = metadata || '{"switchboard_cancelled": "cancel_sms"}'
    WHERE id = v_msg.job_id AND state IN ('available', 'scheduled', 'retryable', 'pending');
    PERFORM switchboard.emit_event('message.cancelled', 'message/' || v_msg.id,
        jsonb_build_object('message_id', v_msg.id, 'status', 'cancelled'));
    RETURN true;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION switchboard.enqueue(kind text, args jsonb, scheduled_at timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
BEGIN
    IF kind IS NULL OR kind = '' THEN
        RAISE EXCEPTION 'kind is required' USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT FROM switchboard.job_kinds k WHERE k.kind = enqueue.kind AND k.app_enqueue) THEN
        RAISE EXCEPTION 'kind % is not a job kind apps may enqueue', enqueue.kind USING ERRCODE = '22023';
    END IF;
    IF args IS NULL OR jsonb_typeof(args) <> 'object' THEN
        RAISE EXCEPTION 'args must be a JSON object' USING ERRCODE = '22023';
    END IF;
    RETURN switchboard.insert_job(enqueue.kind, enqueue.args, enqueue.scheduled_at);
END
$$;
-- +goose StatementEnd

-- record_dead_letter copies a job that River gave up on (discarded) or that a
-- worker cancelled with an error (river.JobCancel) into dead_letters, in the
-- same transaction as River's state change, and announces it to the app.
-- A trigger is the one mechanism that sees every path: final error, JobCancel,
-- unknown kind, undecodable args and the rescuer. Re-check it after every
-- River upgrade (triggers on river_job are not supported by River).
-- +goose StatementBegin
CREATE FUNCTION switchboard.record_dead_letter()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_kind    switchboard.job_kinds;
    v_subject text;
    v_class   text;
    v_id      bigint;
BEGIN
    IF NEW.metadata ? 'unique_key_conflict' OR NEW.metadata ? 'switchboard_cancelled' THEN
        RETURN NULL;
    END IF;
    -- A job cancelled without any error was cancelled deliberately (River UI
    -- on a job that never ran): nothing failed.
    IF NEW.state = 'cancelled' AND coalesce(array_length(NEW.errors, 1), 0) = 0 THEN
        RETURN NULL;
    END IF;
    SELECT * INTO v_kind FROM switchboard.job_kinds WHERE kind = NEW.kind;
    IF FOUND AND v_kind.subject_arg IS NOT NULL AND NEW.args ? v_kind.subject_arg THEN
        v_subject := v_kind.subject_type || '/' || (NEW.args ->> v_kind.subject_arg);
    END IF;
    v_class := coalesce(NEW.metadata ->> 'outcome_class',
        CASE WHEN NOT FOUND THEN 'unknown_kind'
             WHEN NEW.state = 'cancelled' THEN 'permanent'
             ELSE 'retries_exhausted' END);
    INSERT INTO switchboard.dead_letters
        (job_id, kind, queue, args, errors, attempts, max_attempts, class, job_state, subject)
    VALUES (NEW.id, NEW.kind, NEW.queue, NEW.args, coalesce(to_jsonb(NEW.errors), '[]'),
            NEW.attempt, NEW.max_attempts, v_class, NEW.state::text, v_subject)
    RETURNING id INTO v_id;
    PERFORM switchboard.emit_event('dead_letter.opened', coalesce(v_subject, 'dead_letter/' || v_id),
        jsonb_build_object('dead_letter_id', v_id, 'job_id', NEW.id, 'kind', NEW.kind, 'class', v_class));
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER switchboard_dead_letter
    AFTER UPDATE OF state ON switchboard.river_job
    FOR EACH ROW
    WHEN (NEW.state IN ('discarded', 'cancelled') AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION switchboard.record_dead_letter();

-- requeue_dead_letter notices a dead job retried from River UI (River makes
-- it available again) and marks its dead letter requeued, with an audit entry.
-- +goose StatementBegin
CREATE FUNCTION switchboard.requeue_dead_letter()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    UPDATE switchboard.dead_letters SET state = 'requeued', requeued_job_id = NEW.id, updated_at = now()
    WHERE job_id = NEW.id AND state = 'open'
    RETURNING id INTO v_id;
    IF v_id IS NOT NULL THEN
        INSERT INTO switchboard.audit_log (actor, action, target_type, target_id, detail)
        VALUES ('river_ui', 'dlq.retry', 'dead_letter', v_id::text,
                jsonb_build_object('job_id', NEW.id, 'new_job_id', NEW.id, 'kind', NEW.kind));
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER switchboard_dead_letter_requeued
    AFTER UPDATE OF state ON switchboard.river_job
    FOR EACH ROW
    WHEN (OLD.state IN ('discarded', 'cancelled') AND NEW.state IN ('available', 'scheduled', 'pending'))
    EXECUTE FUNCTION switchboard.requeue_dead_letter();

-- dlq_retry requeues open dead letters: a fresh job with the same kind and
-- args, the row marked requeued with the new job id, and an audit entry.
-- Returns the new job ids in the order of the given ids.
-- +goose StatementBegin
CREATE FUNCTION switchboard.dlq_retry(ids bigint[], actor text)
RETURNS bigint[]
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_dl     switchboard.dead_letters;
    v_id     bigint;
    v_job_id bigint;
    v_out    bigint[] := '{}';
BEGIN
    IF actor IS NULL OR btrim(actor) = '' THEN
        RAISE EXCEPTION 'actor is required' USING ERRCODE = '22023';
    END IF;
    IF ids IS NULL OR cardinality(ids) = 0 THEN
        RAISE EXCEPTION 'ids must name at least one dead letter' USING ERRCODE = '22023';
    END IF;
    FOREACH v_id IN ARRAY ids LOOP
        SELECT * INTO v_dl FROM switchboard.dead_letters WHERE id = v_id FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'ids: dead letter % does not exist', v_id USING ERRCODE = '22023';
        END IF;
        IF v_dl.state <> 'open' THEN
            RAISE EXCEPTION 'ids: dead letter % is %, not open', v_id, v_dl.state USING ERRCODE = '22023';
        END IF;
        -- An unknown kind has no job_kinds row: requeue it where it was.
        IF EXISTS (SELECT FROM switchboard.job_kinds WHERE kind = v_dl.kind) THEN
            v_job_id := switchboard.insert_job(v_dl.kind, v_dl.args);
        ELSE
            INSERT INTO switchboard.river_job (kind, args, queue, max_attempts)
            VALUES (v_dl.kind, v_dl.args, v_dl.queue, greatest(v_dl.max_attempts, 1))
            RETURNING id INTO v_job_id;
            PERFORM pg_notify('switchboard.river_insert', json_build_object('queue', v_dl.queue)::text);
        END IF;
        UPDATE switchboard.dead_letters SET state = 'requeued', requeued_job_id = v_job_id, updated_at = now()
        WHERE id = v_id;
        INSERT INTO switchboard.audit_log (actor, action, target_type, target_id, detail)
        VALUES (actor, 'dlq.retry', 'dead_letter', v_id::text,
                jsonb_build_object('job_id', v_dl.job_id, 'new_job_id', v_job_id, 'kind', v_dl.kind));
        v_out := v_out || v_job_id;
    END LOOP;
    RETURN v_out;
END
$$;
-- +goose StatementEnd

-- dlq_purge marks open dead letters purged (kept for the record, args
-- emptied) with an audit entry per row. Returns how many were purged.
-- +goose StatementBegin
CREATE FUNCTION switchboard.dlq_purge(ids bigint[], actor text)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_dl switchboard.dead_letters;
    v_id bigint;
    v_n  integer := 0;
BEGIN
    IF actor IS NULL OR btrim(actor) = '' THEN
        RAISE EXCEPTION 'actor is required' USING ERRCODE = '22023';
    END IF;
    IF ids IS NULL OR cardinality(ids) = 0 THEN
        RAISE EXCEPTION 'ids must name at least one dead letter' USING ERRCODE = '22023';
    END IF;
    FOREACH v_id IN ARRAY ids LOOP
        SELECT * INTO v_dl FROM switchboard.dead_letters WHERE id = v_id FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'ids: dead letter % does not exist', v_id USING ERRCODE = '22023';
        END IF;
        IF v_dl.state <> 'open' THEN
            RAISE EXCEPTION 'ids: dead letter % is %, not open', v_id, v_dl.state USING ERRCODE = '22023';
        END IF;
        UPDATE switchboard.dead_letters SET state = 'purged', updated_at = now() WHERE id = v_id;
        INSERT INTO switchboard.audit_log (actor, action, target_type, target_id, detail)
        VALUES (actor, 'dlq.purge', 'dead_letter', v_id::text,
                jsonb_build_object('job_id', v_dl.job_id, 'kind', v_dl.kind));
        v_n := v_n + 1;
    END LOOP;
    RETURN v_n;
END
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION switchboard.emit_event(text, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.insert_job(text, jsonb, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.send_sms(text, text, text, text, timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.cancel_sms(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.enqueue(text, jsonb, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.record_dead_letter() FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.requeue_dead_letter() FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.dlq_retry(bigint[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.dlq_purge(bigint[], text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION switchboard.send_sms(text, text, text, text, timestamptz, timestamptz),
    switchboard.cancel_sms(bigint), switchboard.enqueue(text, jsonb, timestamptz)
    TO switchboard_app, switchboard_worker;
GRANT EXECUTE ON FUNCTION switchboard.emit_event(text, text, jsonb), switchboard.insert_job(text, jsonb, timestamptz)
    TO switchboard_worker;
GRANT EXECUTE ON FUNCTION switchboard.dlq_retry(bigint[], text), switchboard.dlq_purge(bigint[], text)
    TO switchboard_operator, switchboard_worker;

-- +goose Down
DROP TRIGGER switchboard_dead_letter_requeued ON switchboard.river_job;
DROP FUNCTION switchboard.requeue_dead_letter();
DROP TRIGGER switchboard_dead_letter ON switchboard.river_job;
DROP FUNCTION switchboard.dlq_purge(bigint[], text);
DROP FUNCTION switchboard.dlq_retry(bigint[], text);
DROP FUNCTION switchboard.record_dead_letter();
DROP FUNCTION switchboard.enqueue(text, jsonb, timestamptz);
DROP FUNCTION switchboard.cancel_sms(bigint);
DROP FUNCTION switchboard.send_sms(text, text, text, text, timestamptz, timestamptz);
DROP FUNCTION switchboard.insert_job(text, jsonb, timestamptz);
DROP FUNCTION switchboard.emit_event(text, text, jsonb);

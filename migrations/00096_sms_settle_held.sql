-- Settling a held SMS (issue 12): a message held for an operator (its
-- attempt's outcome 'held', a reconcile_undecided dead letter) because its
-- provider's copy could not be decided is settled by the operator with
-- switchboard.sms_settle_held: either the provider message id the operator
-- found to be its copy (adopted: never sent again), or none (the operator
-- found no copy: it is sent). Either way its dead letter is retried, and the
-- retried job carries the decision out. Audited.
--
-- And a fix this needs: dlq_retry of an sms_send dead letter made a new job
-- while the message still named the dead one (messages.job_id), so the new
-- job's run failed the send fence (SendRunsHolding) on every attempt. A
-- retried sms_send job now becomes its message's job.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION switchboard.dlq_retry(ids bigint[], actor text)
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
        -- The send fence holds a message for its job (messages.job_id): the
        -- retried job becomes the message's job.
        IF v_dl.kind = 'sms_send' AND v_dl.args ? 'message_id' THEN
            UPDATE switchboard.messages SET job_id = v_job_id
             WHERE id = (v_dl.args ->> 'message_id')::bigint AND job_id = v_dl.job_id;
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

-- +goose StatementBegin
CREATE FUNCTION switchboard.sms_settle_held(message_id bigint, provider_message_id text, actor text)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_msg   switchboard.messages;
    v_att   switchboard.message_attempts;
    v_dl    bigint;
    v_other bigint;
    v_job   bigint[];
BEGIN
    IF actor IS NULL OR btrim(actor) = '' THEN
        RAISE EXCEPTION 'actor is required' USING ERRCODE = '22023';
    END IF;
    IF message_id IS NULL THEN
        RAISE EXCEPTION 'message_id is required' USING ERRCODE = '22023';
    END IF;
    IF provider_message_id IS NOT NULL AND (btrim(provider_message_id) = '' OR provider_message_id !~ '^[A-Za-z0-9-]{1,64}$') THEN
        RAISE EXCEPTION 'provider_message_id must be the provider''s id (letters, digits and dashes), or NULL for no copy'
            USING ERRCODE = '22023';
    END IF;
    SELECT * INTO v_msg FROM switchboard.messages m WHERE m.id = sms_settle_held.message_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'message_id: message % does not exist', message_id USING ERRCODE = '22023';
    END IF;
    SELECT * INTO v_att FROM switchboard.message_attempts a WHERE a.message_id = v_msg.id ORDER BY a.id DESC LIMIT 1;
    IF NOT FOUND OR v_att.outcome IS DISTINCT FROM 'held' OR v_msg.provider_message_id IS NOT NULL THEN
        RAISE EXCEPTION 'message_id: message % is not held for an operator', message_id USING ERRCODE = '22023';
    END IF;
    SELECT d.id INTO v_dl FROM switchboard.dead_letters d
     WHERE d.job_id = v_msg.job_id AND d.state = 'open' AND d.class = 'reconcile_undecided'
     FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'message_id: message % has no open reconcile_undecided dead letter', message_id USING ERRCODE = '22023';
    END IF;

    IF provider_message_id IS NULL THEN
        -- The operator found no copy at the provider: it is sent.
        UPDATE switchboard.message_attempts SET outcome = 'reconciled_absent', finished_at = coalesce(finished_at, now())
         WHERE id = v_att.id;
    ELSE
        -- The operator found its copy: adopted, never sent again. An id is
        -- adopted by at most one message.
        SELECT m.id INTO v_other FROM switchboard.messages m
         WHERE m.provider_message_id = sms_settle_held.provider_message_id AND m.id <> v_msg.id;
        IF NOT FOUND THEN
            SELECT a.message_id INTO v_other FROM switchboard.message_attempts a
             WHERE a.provider = v_att.provider AND a.provider_message_id = sms_settle_held.provider_message_id
               AND a.message_id <> v_msg.id LIMIT 1;
        END IF;
        IF v_other IS NOT NULL THEN
            RAISE EXCEPTION 'provider_message_id: % is message %''s copy', provider_message_id, v_other USING ERRCODE = '22023';
        END IF;
        UPDATE switchboard.message_attempts
           SET outcome = 'reconciled_found', provider_message_id = sms_settle_held.provider_message_id,
               finished_at = coalesce(finished_at, now())
         WHERE id = v_att.id;
        UPDATE switchboard.messages
           SET provider_message_id = sms_settle_held.provider_message_id, provider = v_att.provider,
               status = 'sending', accepted_at = coalesce(accepted_at, now()), updated_at = now()
         WHERE id = v_msg.id;
    END IF;
    PERFORM switchboard.emit_event('message.settled', 'message/' || v_msg.id,
        jsonb_build_object('message_id', v_msg.id, 'attempt_id', v_att.id, 'provider', v_att.provider,
                           'decision', CASE WHEN provider_message_id IS NULL THEN 'no_copy' ELSE 'adopted' END));
    INSERT INTO switchboard.audit_log (actor, action, target_type, target_id, detail)
    VALUES (actor, 'sms.settle', 'message', v_msg.id::text,
            jsonb_build_object('attempt_id', v_att.id, 'dead_letter_id', v_dl,
                               'decision', CASE WHEN provider_message_id IS NULL THEN 'no_copy' ELSE 'adopted' END,
                               'provider_message_id', provider_message_id));
    v_job := switchboard.dlq_retry(ARRAY[v_dl], actor);
    RETURN v_job[1];
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION switchboard.sms_settle_held(bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION switchboard.sms_settle_held(bigint, text, text) TO switchboard_operator;
SELECT switchboard.secure_definer_functions();

-- +goose Down
DROP FUNCTION switchboard.sms_settle_held(bigint, text, text);
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION switchboard.dlq_retry(ids bigint[], actor text)
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

-- Bad input closed (issue 15, item 5).
--
-- 1. A message body of only white space is refused with 22023 naming body.
--    The check is a trigger on switchboard.messages whose WHEN clause is
--    evaluated without calling PL/pgSQL, so send_sms (and any later
--    redefinition of it) keeps its one-statement cost; the function runs
--    only for a blank body, to raise.
-- 2. cancel_sms returns true only when this call cancelled the message: a
--    message already cancelled answers false, like any other message it
--    cannot cancel. An attempt whose outcome is 'held' (fenced by the send
--    path) is treated like one in flight: not cancelled.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION switchboard.refuse_blank_body()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = switchboard, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'body must contain a character that is not white space' USING ERRCODE = '22023';
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION switchboard.refuse_blank_body() FROM PUBLIC;

CREATE TRIGGER messages_body_not_blank
    BEFORE INSERT OR UPDATE OF body ON switchboard.messages
    FOR EACH ROW WHEN (NEW.body !~ '[^[:space:]]')
    EXECUTE FUNCTION switchboard.refuse_blank_body();

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION switchboard.cancel_sms(message_id bigint)
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
    -- true only when this call cancels: an already cancelled message, like
    -- one that has gone to a provider, answers false.
    IF v_msg.status <> 'queued' OR EXISTS (
        SELECT FROM switchboard.message_attempts a
        WHERE a.message_id = v_msg.id
          AND (a.outcome IS NULL OR a.outcome IN ('accepted', 'ambiguous', 'reconciled_found', 'held'))) THEN
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

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION switchboard.cancel_sms(message_id bigint)
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
DROP TRIGGER messages_body_not_blank ON switchboard.messages;
DROP FUNCTION switchboard.refuse_blank_body();

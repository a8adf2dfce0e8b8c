-- Unified messaging: a message's purpose (HELP answers reach opted-out
-- numbers), its encoding, the recipient's time zone for quiet hours,
-- auto-reply bookkeeping, the reconciliation kind, and send_sms with an
-- optional time_zone (a trailing parameter with a default: existing callers
-- are unaffected).

-- +goose Up
ALTER TABLE switchboard.messages
    ADD COLUMN purpose text NOT NULL DEFAULT 'app' CHECK (purpose IN ('app', 'help', 'auto_reply', 'system')),
    ADD COLUMN encoding text CHECK (encoding IN ('GSM-7', 'UCS-2')),
    ADD COLUMN time_zone text,
    ADD COLUMN reconciled_at timestamptz;

-- Messages a provider accepted that have no final status yet: what the
-- reconciliation job scans.
CREATE INDEX messages_unfinished_idx ON switchboard.messages (accepted_at)
    WHERE provider_message_id IS NOT NULL AND status IN ('sending', 'sent');

-- One auto-reply per number per conversation window.
CREATE TABLE switchboard.sms_auto_replies (
    phone_e164    text PRIMARY KEY,
    last_reply_at timestamptz NOT NULL
);

ALTER TABLE switchboard.inbound_messages
    ADD COLUMN keyword text,
    ADD COLUMN message_id bigint;

INSERT INTO switchboard.job_kinds (kind, queue, priority, max_attempts, description) VALUES
    ('sms_reconcile', 'sms', 3, 3, 'ask providers for the status of accepted messages that have no final status');

GRANT SELECT, INSERT, UPDATE, DELETE ON switchboard.sms_auto_replies TO switchboard_worker;
GRANT SELECT ON switchboard.sms_auto_replies TO switchboard_operator;

DROP FUNCTION switchboard.send_sms(text, text, text, text, timestamptz, timestamptz);

-- +goose StatementBegin
CREATE FUNCTION switchboard.send_sms(
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

    -- Times enter the hash as epoch numbers: a timestamptz rendered as text
    -- depends on the session's TimeZone. time_zone joins the hash only when
    -- given, so keys used before it existed keep matching.
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

REVOKE ALL ON FUNCTION switchboard.send_sms(text, text, text, text, timestamptz, timestamptz, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION switchboard.send_sms(text, text, text, text, timestamptz, timestamptz, text)
    TO switchboard_app, switchboard_worker;

-- rate_limit_reserve books the next slot for p_key and returns how long the
-- caller must wait for it ('0': go now). Unlike rate_limit_take, a caller
-- that must wait still gets its own slot, so a backlog of jobs snoozes once,
-- each until its own turn, instead of all waking for the same slot and
-- asking again. A slot further away than p_max_wait is not booked: the
-- wait is returned with booked = false (ask again later).
-- +goose StatementBegin
CREATE FUNCTION switchboard.rate_limit_reserve(p_key text, p_interval interval, p_burst integer, p_max_wait interval,
    OUT wait interval, OUT booked boolean)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_tolerance interval;
    v_now       timestamptz;
    v_tat       timestamptz;
BEGIN
    IF p_key IS NULL OR p_key = '' OR char_length(p_key) > 200 THEN
        RAISE EXCEPTION 'key must be 1 to 200 characters' USING ERRCODE = '22023';
    END IF;
    IF p_interval IS NULL OR p_interval <= interval '0' OR p_interval > interval '1 day' THEN
        RAISE EXCEPTION 'interval must be more than 0 and at most 1 day' USING ERRCODE = '22023';
    END IF;
    IF p_burst IS NULL OR p_burst < 1 OR p_burst > 10000 THEN
        RAISE EXCEPTION 'burst must be 1 to 10000' USING ERRCODE = '22023';
    END IF;
    IF p_max_wait IS NULL OR p_max_wait < interval '0' THEN
        RAISE EXCEPTION 'max_wait must not be negative' USING ERRCODE = '22023';
    END IF;
    v_tolerance := p_interval * (p_burst - 1);
    -- Lock the key's row (creating it rested), then decide on the locked value.
    INSERT INTO switchboard.rate_limits AS r (key, tat, updated_at)
    VALUES (p_key, clock_timestamp(), clock_timestamp())
    ON CONFLICT (key) DO UPDATE SET updated_at = r.updated_at
    RETURNING r.tat INTO v_tat;
    v_now := clock_timestamp();
    wait := greatest(v_tat - v_tolerance - v_now, interval '0');
    IF wait > p_max_wait THEN
        booked := false;
        RETURN;
    END IF;
    UPDATE switchboard.rate_limits SET tat = greatest(v_tat, v_now) + p_interval, updated_at = v_now WHERE key = p_key;
    booked := true;
END
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION switchboard.rate_limit_reserve(text, interval, integer, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION switchboard.rate_limit_reserve(text, interval, integer, interval) TO switchboard_worker;

-- +goose Down
DROP FUNCTION switchboard.rate_limit_reserve(text, interval, integer, interval);
DROP FUNCTION switchboard.send_sms(text, text, text, text, timestamptz, timestamptz, text);

-- +goose StatementBegin
CREATE FUNCTION switchboard.send_sms(
    idempotency_key text,
    to_e164 text,
    body text,
    patient_ref text DEFAULT NULL,
    not_before timestamptz DEFAULT NULL,
    not_after timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE sql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
    SELECT 1::bigint WHERE false
$$;
-- +goose StatementEnd
DELETE FROM switchboard.job_kinds WHERE kind = 'sms_reconcile';
ALTER TABLE switchboard.inbound_messages DROP COLUMN message_id, DROP COLUMN keyword;
DROP TABLE switchboard.sms_auto_replies;
DROP INDEX switchboard.messages_unfinished_idx;
ALTER TABLE switchboard.messages DROP COLUMN reconciled_at, DROP COLUMN time_zone, DROP COLUMN encoding, DROP COLUMN purpose;

-- Pausing a name that is not a destination used to succeed: it created a
-- destination_health row, wrote "destination.pause" to the audit log and
-- paused nothing (issue 14). destination_set_paused now refuses such a name
-- and lists the known destinations:
--   * the vendors Switchboard calls (switchboard.vendor_destinations; a
--     migration that adds a vendor adds its row),
--   * every EHR endpoint as ehr:<name>,
--   * the destination of every job kind,
--   * any destination a worker has called or probed (its health row has
--     calls or a probe), so a destination registered in code is never refused.

-- +goose Up
CREATE TABLE switchboard.vendor_destinations (
    destination text PRIMARY KEY CHECK (destination ~ '^[a-z0-9][a-z0-9_.:-]{0,126}$'),
    description text NOT NULL
);
INSERT INTO switchboard.vendor_destinations (destination, description) VALUES
    ('twilio', 'Twilio Programmable Messaging (SMS)'),
    ('telnyx', 'Telnyx Messaging (SMS)'),
    ('google_health', 'Google Health API (wearables)');
GRANT SELECT ON switchboard.vendor_destinations TO switchboard_worker, switchboard_operator;

-- destination_names lists every destination an operator may pause, sorted.
-- +goose StatementBegin
CREATE FUNCTION switchboard.destination_names()
RETURNS SETOF text
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
    SELECT destination FROM switchboard.vendor_destinations
    UNION SELECT 'ehr:' || name FROM switchboard.ehr_endpoints
    UNION SELECT destination FROM switchboard.job_kinds WHERE destination IS NOT NULL
    UNION SELECT destination FROM switchboard.destination_health WHERE calls_total > 0 OR last_probe_at IS NOT NULL
    ORDER BY 1
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION switchboard.destination_set_paused(p_destination text, p_paused boolean, actor text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
BEGIN
    IF actor IS NULL OR btrim(actor) = '' THEN
        RAISE EXCEPTION 'actor is required' USING ERRCODE = '22023';
    END IF;
    IF p_paused IS NULL THEN
        RAISE EXCEPTION 'paused is required' USING ERRCODE = '22023';
    END IF;
    IF p_destination IS NULL OR NOT EXISTS (SELECT 1 FROM switchboard.destination_names() n WHERE n = p_destination) THEN
        RAISE EXCEPTION 'unknown destination %; destinations: %', coalesce(quote_literal(p_destination), 'NULL'),
            (SELECT string_agg(n, ', ') FROM switchboard.destination_names() n)
            USING ERRCODE = '22023';
    END IF;
    INSERT INTO switchboard.destination_health AS d (destination, paused, paused_by, paused_at)
    VALUES (p_destination, p_paused, CASE WHEN p_paused THEN actor END, CASE WHEN p_paused THEN now() END)
    ON CONFLICT (destination) DO UPDATE
    SET paused = excluded.paused, paused_by = excluded.paused_by, paused_at = excluded.paused_at, updated_at = now();
    INSERT INTO switchboard.audit_log (actor, action, target_type, target_id, detail)
    VALUES (actor, CASE WHEN p_paused THEN 'destination.pause' ELSE 'destination.resume' END,
            'destination', p_destination, '{}');
END
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION switchboard.destination_names() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION switchboard.destination_names() TO switchboard_operator, switchboard_worker;

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION switchboard.destination_set_paused(p_destination text, p_paused boolean, actor text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
BEGIN
    IF actor IS NULL OR btrim(actor) = '' THEN
        RAISE EXCEPTION 'actor is required' USING ERRCODE = '22023';
    END IF;
    IF p_destination IS NULL OR p_destination !~ '^[a-z0-9][a-z0-9_.:-]{0,126}$' THEN
        RAISE EXCEPTION 'destination must be a destination name (lowercase letters, digits, _.:-)' USING ERRCODE = '22023';
    END IF;
    IF p_paused IS NULL THEN
        RAISE EXCEPTION 'paused is required' USING ERRCODE = '22023';
    END IF;
    INSERT INTO switchboard.destination_health AS d (destination, paused, paused_by, paused_at)
    VALUES (p_destination, p_paused, CASE WHEN p_paused THEN actor END, CASE WHEN p_paused THEN now() END)
    ON CONFLICT (destination) DO UPDATE
    SET paused = excluded.paused, paused_by = excluded.paused_by, paused_at = excluded.paused_at, updated_at = now();
    INSERT INTO switchboard.audit_log (actor, action, target_type, target_id, detail)
    VALUES (actor, CASE WHEN p_paused THEN 'destination.pause' ELSE 'destination.resume' END,
            'destination', p_destination, '{}');
END
$$;
-- +goose StatementEnd
DROP FUNCTION switchboard.destination_names();
DROP TABLE switchboard.vendor_destinations;

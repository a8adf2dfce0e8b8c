-- Resilience: per-destination health and operator control, per-kind limits
-- on snoozing for unavailability, opt-in automatic requeue of outage dead
-- letters.

-- +goose Up

-- One row per destination (a vendor, or one EHR endpoint). Workers merge
-- their view into it every few seconds; operators pause and resume here.
CREATE TABLE switchboard.destination_health (
    destination          text PRIMARY KEY CHECK (destination ~ '^[a-z0-9][a-z0-9_.:-]{0,126}$'),
    last_success_at      timestamptz,
    last_failure_at      timestamptz,
    last_failure_class   text,
    consecutive_failures integer NOT NULL DEFAULT 0,
    breaker_state        text NOT NULL DEFAULT 'closed' CHECK (breaker_state IN ('closed', 'half-open', 'open')),
    breaker_changed_at   timestamptz,
    calls_total          bigint NOT NULL DEFAULT 0,
    last_probe_at        timestamptz,
    paused               boolean NOT NULL DEFAULT false,
    paused_by            text,
    paused_at            timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE switchboard.job_kinds
    -- How long a job may keep snoozing because its destination is
    -- unavailable (breaker open, paused) before it becomes a dead letter of
    -- class unavailable: an old reminder must not go out days late.
    ADD COLUMN unavailable_limit interval NOT NULL DEFAULT interval '6 hours',
    -- Requeue this kind's outage dead letters (unavailable, retries_exhausted)
    -- automatically once its destination is healthy again.
    ADD COLUMN auto_requeue boolean NOT NULL DEFAULT false,
    -- The destination a kind calls, for automatic requeue and /status.
    ADD COLUMN destination text;

UPDATE switchboard.job_kinds SET unavailable_limit = interval '2 hours', destination = 'twilio' WHERE kind = 'sms_send';

INSERT INTO switchboard.job_kinds (kind, queue, priority, max_attempts, description) VALUES
    ('destination_probe', 'maintenance', 4, 1, 'probe idle destinations and refresh their health'),
    ('maintenance', 'maintenance', 4, 3, 'retention erasure, limiter cleanup and automatic requeue of outage dead letters');

GRANT SELECT, INSERT, UPDATE, DELETE ON switchboard.destination_health TO switchboard_worker;
GRANT SELECT ON switchboard.destination_health TO switchboard_operator;

-- dlq_retry_where requeues every open dead letter matching the filters (all
-- optional but at least one) and returns how many it requeued. For bulk
-- recovery after an outage: switchboard dlq retry --kind K --class unavailable --since T.
-- +goose StatementBegin
CREATE FUNCTION switchboard.dlq_retry_where(p_kind text, p_class text, p_since timestamptz, actor text)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_ids bigint[];
BEGIN
    IF actor IS NULL OR btrim(actor) = '' THEN
        RAISE EXCEPTION 'actor is required' USING ERRCODE = '22023';
    END IF;
    IF p_kind IS NULL AND p_class IS NULL AND p_since IS NULL THEN
        RAISE EXCEPTION 'kind, class or since is required for a bulk retry' USING ERRCODE = '22023';
    END IF;
    IF p_class IS NOT NULL AND p_class NOT IN ('permanent', 'retries_exhausted', 'unavailable', 'unknown_kind', 'undecodable_args') THEN
        RAISE EXCEPTION 'class % is not a dead-letter class', p_class USING ERRCODE = '22023';
    END IF;
    SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO v_ids
    FROM switchboard.dead_letters
    WHERE state = 'open'
      AND (p_kind IS NULL OR kind = p_kind)
      AND (p_class IS NULL OR class = p_class)
      AND (p_since IS NULL OR created_at >= p_since);
    IF cardinality(v_ids) = 0 THEN
        RETURN 0;
    END IF;
    PERFORM switchboard.dlq_retry(v_ids, actor);
    RETURN cardinality(v_ids);
END
$$;
-- +goose StatementEnd

-- destination_set_paused pauses or resumes calls to one destination (its
-- jobs snooze), with an audit entry.
-- +goose StatementBegin
CREATE FUNCTION switchboard.destination_set_paused(p_destination text, p_paused boolean, actor text)
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

REVOKE ALL ON FUNCTION switchboard.dlq_retry_where(text, text, timestamptz, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.destination_set_paused(text, boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION switchboard.dlq_retry_where(text, text, timestamptz, text),
    switchboard.destination_set_paused(text, boolean, text) TO switchboard_operator, switchboard_worker;

-- +goose Down
DROP FUNCTION switchboard.destination_set_paused(text, boolean, text);
DROP FUNCTION switchboard.dlq_retry_where(text, text, timestamptz, text);
DELETE FROM switchboard.job_kinds WHERE kind IN ('destination_probe', 'maintenance');
ALTER TABLE switchboard.job_kinds DROP COLUMN destination, DROP COLUMN auto_requeue, DROP COLUMN unavailable_limit;
DROP TABLE switchboard.destination_health;

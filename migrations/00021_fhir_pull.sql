-- Pulling from EHRs (raw resources received, a cursor per endpoint and
-- type, the jobs that pull) and the triggers that queue pushes of sent
-- messages (Communication) and SMS consent (Consent).

-- +goose Up

-- fhir_inbound keeps every resource version pulled, raw, once: dedupe on
-- (endpoint, type, id, versionId). Unmatched resources wait for review.
CREATE TABLE switchboard.fhir_inbound (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id   bigint NOT NULL REFERENCES switchboard.ehr_endpoints (id),
    resource_type text NOT NULL,
    resource_id   text NOT NULL,
    -- meta.versionId, or "h:<sha256>" of the content when the server sends none.
    version_id    text NOT NULL,
    last_updated  timestamptz,
    raw           jsonb,
    -- applied: mapped into the domain tables; unmatched: no local patient
    -- carries its identifier (held for review); echo: our own write;
    -- ignored: nothing to map.
    state         text NOT NULL CHECK (state IN ('applied', 'unmatched', 'echo', 'ignored')),
    reason        text,
    patient_id    bigint REFERENCES switchboard.patients (id),
    received_at   timestamptz NOT NULL DEFAULT now(),
    raw_erased_at timestamptz,
    UNIQUE (endpoint_id, resource_type, resource_id, version_id)
);
CREATE INDEX fhir_inbound_unmatched_idx ON switchboard.fhir_inbound (endpoint_id, id) WHERE state = 'unmatched';

CREATE TABLE switchboard.fhir_pull_cursors (
    endpoint_id   bigint NOT NULL REFERENCES switchboard.ehr_endpoints (id),
    resource_type text NOT NULL,
    -- Highest meta.lastUpdated seen; the next pull asks from cursor minus
    -- the overlap window.
    cursor        timestamptz,
    last_pull_at  timestamptz,
    next_pull_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (endpoint_id, resource_type)
);

INSERT INTO switchboard.job_kinds (kind, queue, priority, max_attempts, subject_type, subject_arg, description, unavailable_limit) VALUES
    ('fhir_pull', 'fhir', 3, 10, 'ehr_endpoint', 'endpoint_id',
     'pull one resource type from one EHR endpoint since its cursor', interval '6 hours'),
    ('fhir_pull_schedule', 'maintenance', 4, 1, NULL, NULL,
     'enqueue due fhir_pull jobs for every enabled endpoint and pull type', interval '6 hours');

-- fhir_enqueue_pull inserts a fhir_pull job unless one is already waiting,
-- and returns its id (NULL when one was waiting). Internal: the webhook
-- handler and the scheduler call it.
-- +goose StatementBegin
CREATE FUNCTION switchboard.fhir_enqueue_pull(p_endpoint_id bigint, p_resource_type text)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_args jsonb := jsonb_build_object('endpoint_id', p_endpoint_id, 'resource_type', p_resource_type);
BEGIN
    IF NOT EXISTS (SELECT FROM switchboard.ehr_endpoints e WHERE e.id = p_endpoint_id) THEN
        RAISE EXCEPTION 'endpoint_id % names no EHR endpoint', p_endpoint_id USING ERRCODE = '22023';
    END IF;
    IF p_resource_type IS NULL OR p_resource_type NOT IN ('Patient', 'Observation') THEN
        RAISE EXCEPTION 'resource_type must be Patient or Observation' USING ERRCODE = '22023';
    END IF;
    -- A pull that has not started yet will see the change; a running one may not.
    IF EXISTS (SELECT FROM switchboard.river_job j
               WHERE j.kind = 'fhir_pull' AND j.args @> v_args
                 AND j.state IN ('available', 'scheduled', 'retryable', 'pending')) THEN
        RETURN NULL;
    END IF;
    RETURN switchboard.insert_job('fhir_pull', v_args);
END
$$;
-- +goose StatementEnd

-- fhir_schedule_pulls enqueues a pull for every enabled endpoint and pull
-- type that is due and returns how many it enqueued.
-- +goose StatementBegin
CREATE FUNCTION switchboard.fhir_schedule_pulls()
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    r   record;
    v_n integer := 0;
BEGIN
    FOR r IN
        SELECT e.id, t.type, e.pull_interval
        FROM switchboard.ehr_endpoints e
        CROSS JOIN LATERAL unnest(e.pull_types) AS t(type)
        LEFT JOIN switchboard.fhir_pull_cursors c ON c.endpoint_id = e.id AND c.resource_type = t.type
        WHERE e.enabled AND (c.next_pull_at IS NULL OR c.next_pull_at <= now())
        ORDER BY e.id, t.type
    LOOP
        INSERT INTO switchboard.fhir_pull_cursors AS c (endpoint_id, resource_type, next_pull_at)
        VALUES (r.id, r.type, now() + r.pull_interval)
        ON CONFLICT (endpoint_id, resource_type) DO UPDATE SET next_pull_at = excluded.next_pull_at;
        IF switchboard.fhir_enqueue_pull(r.id, r.type) IS NOT NULL THEN
            v_n := v_n + 1;
        END IF;
    END LOOP;
    RETURN v_n;
END
$$;
-- +goose StatementEnd

-- A message that reached a provider (or failed for good) becomes a
-- Communication on the endpoints that take them, when it names a known patient.
-- +goose StatementBegin
CREATE FUNCTION switchboard.fhir_message_changed()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
BEGIN
    IF NEW.patient_ref IS NOT NULL
       AND EXISTS (SELECT FROM switchboard.patients p WHERE p.external_ref = NEW.patient_ref)
       AND EXISTS (SELECT FROM switchboard.ehr_endpoints e WHERE e.enabled
                   AND ('Communication' = ANY (e.push_types) OR '*' = ANY (e.push_types))) THEN
        PERFORM switchboard.fhir_enqueue_push('communication', NEW.id, 'Communication');
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER fhir_message_changed
    AFTER UPDATE OF status ON switchboard.messages
    FOR EACH ROW
    WHEN (NEW.status IN ('sent', 'delivered', 'undelivered', 'failed') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION switchboard.fhir_message_changed();

-- A changed SMS consent becomes a Consent of every patient with that number.
-- +goose StatementBegin
CREATE FUNCTION switchboard.fhir_consent_changed()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_patient bigint;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.opted_out IS NOT DISTINCT FROM NEW.opted_out THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT FROM switchboard.ehr_endpoints e WHERE e.enabled
                   AND ('Consent' = ANY (e.push_types) OR '*' = ANY (e.push_types))) THEN
        RETURN NULL;
    END IF;
    FOR v_patient IN SELECT p.id FROM switchboard.patients p WHERE p.phone_e164 = NEW.phone_e164 ORDER BY p.id LOOP
        PERFORM switchboard.fhir_enqueue_push('consent', v_patient, 'Consent');
    END LOOP;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER fhir_consent_changed
    AFTER INSERT OR UPDATE ON switchboard.sms_consent
    FOR EACH ROW
    EXECUTE FUNCTION switchboard.fhir_consent_changed();

REVOKE ALL ON FUNCTION switchboard.fhir_enqueue_pull(bigint, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.fhir_schedule_pulls() FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.fhir_message_changed() FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.fhir_consent_changed() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION switchboard.fhir_enqueue_pull(bigint, text), switchboard.fhir_schedule_pulls()
    TO switchboard_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON switchboard.fhir_inbound, switchboard.fhir_pull_cursors TO switchboard_worker;
GRANT SELECT ON switchboard.fhir_pull_cursors TO switchboard_operator;
GRANT SELECT (id, endpoint_id, resource_type, resource_id, version_id, last_updated, state, reason, patient_id,
              received_at) ON switchboard.fhir_inbound TO switchboard_operator;

-- +goose Down
DROP TRIGGER fhir_consent_changed ON switchboard.sms_consent;
DROP TRIGGER fhir_message_changed ON switchboard.messages;
DROP FUNCTION switchboard.fhir_consent_changed();
DROP FUNCTION switchboard.fhir_message_changed();
DROP FUNCTION switchboard.fhir_schedule_pulls();
DROP FUNCTION switchboard.fhir_enqueue_pull(bigint, text);
DELETE FROM switchboard.job_kinds WHERE kind IN ('fhir_pull', 'fhir_pull_schedule');
DROP TABLE switchboard.fhir_pull_cursors;
DROP TABLE switchboard.fhir_inbound;

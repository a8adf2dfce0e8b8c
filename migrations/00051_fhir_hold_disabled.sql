-- A disabled EHR endpoint holds its pushes instead of dropping them:
-- fhir_enqueue_push queues them for disabled endpoints too (the fhir_push
-- worker snoozes them, no attempt spent, until `ehr enable` wakes them
-- oldest first). Only a retired endpoint (`ehr disable --drop`,
-- ehr_endpoints.retired_at) gets none.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION switchboard.fhir_enqueue_push(p_entity text, p_entity_id bigint, p_resource_type text,
    p_endpoint_id bigint DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_endpoint bigint;
    v_args     jsonb;
    v_n        integer := 0;
BEGIN
    FOR v_endpoint IN
        SELECT e.id FROM switchboard.ehr_endpoints e
        WHERE e.retired_at IS NULL
          AND (p_endpoint_id IS NULL OR e.id = p_endpoint_id)
          AND (p_endpoint_id IS NOT NULL OR p_resource_type = ANY (e.push_types) OR '*' = ANY (e.push_types))
        ORDER BY e.id
    LOOP
        v_args := jsonb_build_object('endpoint_id', v_endpoint, 'entity', p_entity, 'entity_id', p_entity_id);
        -- A waiting job loads the current row when it runs: one is enough.
        -- A running one may have read the old row, so it does not count.
        CONTINUE WHEN EXISTS (
            SELECT FROM switchboard.river_job j
            WHERE j.kind = 'fhir_push' AND j.args @> v_args
              AND j.state IN ('available', 'scheduled', 'retryable', 'pending'));
        PERFORM switchboard.insert_job('fhir_push', v_args);
        v_n := v_n + 1;
    END LOOP;
    RETURN v_n;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION switchboard.fhir_enqueue_push(p_entity text, p_entity_id bigint, p_resource_type text,
    p_endpoint_id bigint DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_endpoint bigint;
    v_args     jsonb;
    v_n        integer := 0;
BEGIN
    FOR v_endpoint IN
        SELECT e.id FROM switchboard.ehr_endpoints e
        WHERE e.enabled
          AND (p_endpoint_id IS NULL OR e.id = p_endpoint_id)
          AND (p_endpoint_id IS NOT NULL OR p_resource_type = ANY (e.push_types) OR '*' = ANY (e.push_types))
        ORDER BY e.id
    LOOP
        v_args := jsonb_build_object('endpoint_id', v_endpoint, 'entity', p_entity, 'entity_id', p_entity_id);
        CONTINUE WHEN EXISTS (
            SELECT FROM switchboard.river_job j
            WHERE j.kind = 'fhir_push' AND j.args @> v_args
              AND j.state IN ('available', 'scheduled', 'retryable', 'pending'));
        PERFORM switchboard.insert_job('fhir_push', v_args);
        v_n := v_n + 1;
    END LOOP;
    RETURN v_n;
END
$$;
-- +goose StatementEnd

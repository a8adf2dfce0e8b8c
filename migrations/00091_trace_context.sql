-- +goose Up
-- Trace context from the app's transaction into its jobs.
--
-- An app that traces sets the W3C traceparent of its current span for the
-- transaction, before calling the SQL API:
--
--     SELECT set_config('switchboard.traceparent', '00-<trace id>-<span id>-01', true);
--
-- (the Go wrappers in jobs/ do it from ctx). Every job that transaction
-- inserts, through any function, then carries it in its River metadata under
-- "traceparent", where the worker picks it up as the parent of its spans
-- (internal/telemetry). The trigger runs only when the setting is non-empty,
-- so untraced enqueues pay nothing but the WHEN test.
-- +goose StatementBegin
CREATE FUNCTION switchboard.river_job_trace_context() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_tp text := pg_catalog.current_setting('switchboard.traceparent', true);
BEGIN
    IF v_tp !~ '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'
       OR v_tp ~ '^[0-9a-f]{2}-0{32}-' OR v_tp ~ '-0{16}-[0-9a-f]{2}$' THEN
        RAISE EXCEPTION 'switchboard.traceparent must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)'
            USING ERRCODE = '22023';
    END IF;
    IF NOT (NEW.metadata ? 'traceparent') THEN
        NEW.metadata := NEW.metadata || pg_catalog.jsonb_build_object('traceparent', v_tp);
    END IF;
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER river_job_trace_context
    BEFORE INSERT ON switchboard.river_job
    FOR EACH ROW
    WHEN (pg_catalog.current_setting('switchboard.traceparent', true) <> '')
    EXECUTE FUNCTION switchboard.river_job_trace_context();

-- +goose Down
DROP TRIGGER IF EXISTS river_job_trace_context ON switchboard.river_job;
DROP FUNCTION IF EXISTS switchboard.river_job_trace_context();

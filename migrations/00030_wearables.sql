-- Wearables: device connections (Google Health API v4 for Fitbit, Apple
-- Health uploads), the short-lived connect links and OAuth states, Apple
-- Health upload tokens, the local store of every sample received, and the
-- columns observations need for wearable data (status, interpretation, the
-- original UTC offset, summaries of high-frequency series).
--
-- API functions follow 00011: SECURITY DEFINER with a fixed search_path, not
-- STRICT, SQLSTATE 22023 naming the field for bad input. Secrets (links,
-- upload tokens, OAuth states) are stored as sha256 only; OAuth tokens and
-- PKCE verifiers are sealed by internal/secrets before they reach a row.

-- +goose Up

CREATE TABLE switchboard.device_connections (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id           bigint NOT NULL REFERENCES switchboard.patients (id),
    provider             text NOT NULL CHECK (provider IN ('google_health', 'apple_health')),
    -- Google: healthUserId (keys webhooks); legacy_user_id: the old Fitbit id.
    external_user_id     text,
    legacy_user_id       text,
    status               text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'active', 'needs_reauth', 'revoked', 'error')),
    -- Why the connection is not active: invalid_grant, access_revoked,
    -- disconnected, or the last error class.
    status_reason        text,
    scopes               text[] NOT NULL DEFAULT '{}',
    -- Sealed with internal/secrets, associated data
    -- "device_connections:<id>:access_token" / ":refresh_token".
    access_token_sealed  text,
    refresh_token_sealed text,
    token_key_id         text,
    token_expires_at     timestamptz,
    -- Per data type: {"heart-rate": {"until": "<RFC 3339>", "disabled": "<reason>"}}.
    cursors              jsonb NOT NULL DEFAULT '{}',
    time_zone            text,
    last_sync_at         timestamptz,
    last_data_at         timestamptz,
    -- Set once when no data arrived for WEARABLES_STALE_AFTER; cleared by data.
    stale_since          timestamptz,
    consecutive_failures integer NOT NULL DEFAULT 0,
    last_error_class     text,
    last_error_at        timestamptz,
    -- Backoff: the poll leaves the connection alone until then.
    retry_after          timestamptz,
    reauth_count         integer NOT NULL DEFAULT 0,
    connected_at         timestamptz,
    revoked_at           timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (patient_id, provider)
);
-- One live connection per Google account: webhooks find it by healthUserId.
CREATE UNIQUE INDEX device_connections_external_user_idx
    ON switchboard.device_connections (provider, external_user_id)
    WHERE external_user_id IS NOT NULL AND status <> 'revoked';
CREATE INDEX device_connections_status_idx ON switchboard.device_connections (status, provider);

-- Connect links: the capability the app hands a patient to start the OAuth
-- flow. Only the sha256 of the random token is kept; it works until it
-- expires (link previews in messaging apps fetch links, so it is not single
-- use — the OAuth state it creates is).
CREATE TABLE switchboard.connect_links (
    token_hash   bytea PRIMARY KEY,
    patient_id   bigint NOT NULL REFERENCES switchboard.patients (id),
    provider     text NOT NULL CHECK (provider IN ('google_health')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    uses         integer NOT NULL DEFAULT 0,
    last_used_at timestamptz
);
CREATE INDEX connect_links_expires_idx ON switchboard.connect_links (expires_at);

-- OAuth states: single use, short-lived, bound to a patient and a PKCE verifier.
CREATE TABLE switchboard.oauth_states (
    state_hash           bytea PRIMARY KEY,
    patient_id           bigint NOT NULL REFERENCES switchboard.patients (id),
    provider             text NOT NULL CHECK (provider IN ('google_health')),
    -- Sealed, associated data "oauth_states:<hex state_hash>:code_verifier".
    code_verifier_sealed text NOT NULL,
    redirect_uri         text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    expires_at           timestamptz NOT NULL,
    used_at              timestamptz
);
CREATE INDEX oauth_states_expires_idx ON switchboard.oauth_states (expires_at);

-- Apple Health upload tokens: per connection bearer tokens, sha256 only.
CREATE TABLE switchboard.upload_tokens (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id bigint NOT NULL REFERENCES switchboard.device_connections (id),
    token_hash    bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX upload_tokens_connection_idx ON switchboard.upload_tokens (connection_id);

-- One accepted Apple Health upload; its samples are in wearable_samples.
CREATE TABLE switchboard.apple_health_uploads (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id bigint NOT NULL REFERENCES switchboard.device_connections (id),
    sample_count  integer NOT NULL,
    new_count     integer NOT NULL,
    deleted       text[] NOT NULL DEFAULT '{}',
    state         text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'processed')),
    received_at   timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz
);

-- Every sample received from a wearable source, normalized (LOINC via kind,
-- UCUM unit), unique per source: the idempotency of syncs and uploads.
-- Valid samples become observations (observation_id); physically impossible
-- ones stay here with a rejection reason and are never pushed; high-frequency
-- series (heart rate) stay here raw and are pushed as summaries per period.
CREATE TABLE switchboard.wearable_samples (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id      bigint NOT NULL REFERENCES switchboard.device_connections (id),
    patient_id         bigint NOT NULL REFERENCES switchboard.patients (id),
    kind               text NOT NULL REFERENCES switchboard.observation_kinds (kind),
    value              numeric NOT NULL,
    unit               text NOT NULL,
    effective_start    timestamptz NOT NULL,
    effective_end      timestamptz,
    utc_offset_seconds integer,
    source             text NOT NULL,
    source_id          text NOT NULL CHECK (char_length(source_id) BETWEEN 1 AND 300),
    device_id          bigint REFERENCES switchboard.devices (id),
    interpretation     text CHECK (interpretation IN ('L', 'H', 'LL', 'HH', 'A')),
    rejection_reason   text,
    status             text NOT NULL DEFAULT 'final' CHECK (status IN ('final', 'entered-in-error')),
    high_frequency     boolean NOT NULL DEFAULT false,
    -- High-frequency samples not yet folded into their period's summary.
    summarized         boolean NOT NULL DEFAULT false,
    upload_id          bigint REFERENCES switchboard.apple_health_uploads (id),
    observation_id     bigint REFERENCES switchboard.observations (id),
    received_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, source_id)
);
CREATE INDEX wearable_samples_hf_idx ON switchboard.wearable_samples (connection_id, kind, effective_start)
    WHERE high_frequency;
CREATE INDEX wearable_samples_unsummarized_idx ON switchboard.wearable_samples (connection_id)
    WHERE high_frequency AND NOT summarized;
CREATE INDEX wearable_samples_upload_idx ON switchboard.wearable_samples (upload_id) WHERE upload_id IS NOT NULL;
CREATE INDEX wearable_samples_window_idx ON switchboard.wearable_samples (connection_id, kind, effective_start);

-- What observations need for wearable data. The FHIR mapper reads status
-- (entered-in-error corrections), interpretation (abnormal flags) and the
-- original offset; summary_* describe a summary of a high-frequency series.
ALTER TABLE switchboard.observations
    ADD COLUMN status text NOT NULL DEFAULT 'final' CHECK (status IN ('final', 'amended', 'entered-in-error')),
    ADD COLUMN interpretation text CHECK (interpretation IN ('L', 'H', 'LL', 'HH', 'A')),
    ADD COLUMN utc_offset_seconds integer,
    ADD COLUMN summary_period interval,
    ADD COLUMN summary_count integer,
    ADD COLUMN summary_min numeric,
    ADD COLUMN summary_max numeric;

INSERT INTO switchboard.job_kinds (kind, queue, priority, max_attempts, subject_type, subject_arg, description, unavailable_limit, destination) VALUES
    ('wearable_sync', 'wearables', 3, 6, 'device_connection', 'connection_id',
     'pull one data type of one connection for one time window from Google Health', interval '24 hours', 'google_health'),
    ('wearable_backfill', 'wearables', 4, 5, 'device_connection', 'connection_id',
     'enqueue chunked syncs of a newly connected (or re-consented) connection from its cursors', interval '24 hours', NULL),
    ('wearable_notification', 'wearables', 2, 10, 'inbound_webhook', 'webhook_id',
     'turn one stored Google Health notification into syncs', interval '6 hours', NULL),
    ('wearable_summarize', 'wearables', 4, 5, 'device_connection', 'connection_id',
     'summarize high-frequency samples per period into observations', interval '6 hours', NULL),
    ('wearable_poll', 'wearables', 4, 1, NULL, NULL,
     'safety-net poll of active connections, backoff recovery and stale-connection flags', interval '1 hour', NULL),
    ('wearable_revoke', 'wearables', 3, 8, 'device_connection', 'connection_id',
     'revoke a disconnected connection''s token at Google and erase it', interval '7 days', 'google_health'),
    ('apple_health_ingest', 'wearables', 2, 10, 'device_connection', 'connection_id',
     'turn one stored Apple Health upload into observations and corrections', interval '6 hours', NULL);

-- random_token returns 244 random bits (two v4 UUIDs) as base64url. Internal.
-- +goose StatementBegin
CREATE FUNCTION switchboard.random_token()
RETURNS text
LANGUAGE sql
VOLATILE
SET search_path = switchboard, pg_temp
AS $$
    SELECT translate(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), 'base64'), '+/=', '-_')
$$;
-- +goose StatementEnd

-- wearables_connect_link issues the link token an app puts in
-- <PUBLIC_BASE_URL>/oauth/google-health/start?link=<token> for one patient.
-- Only its sha256 is stored; it works until ttl (1 minute to 7 days) passes.
-- +goose StatementBegin
CREATE FUNCTION switchboard.wearables_connect_link(
    patient_external_ref text,
    provider text DEFAULT 'google_health',
    ttl interval DEFAULT interval '30 minutes')
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_patient bigint;
    v_token   text;
BEGIN
    IF patient_external_ref IS NULL OR btrim(patient_external_ref) = '' THEN
        RAISE EXCEPTION 'patient_external_ref is required' USING ERRCODE = '22023';
    END IF;
    IF provider IS NULL OR provider <> 'google_health' THEN
        RAISE EXCEPTION 'provider must be google_health' USING ERRCODE = '22023';
    END IF;
    IF ttl IS NULL OR ttl < interval '1 minute' OR ttl > interval '7 days' THEN
        RAISE EXCEPTION 'ttl must be 1 minute to 7 days' USING ERRCODE = '22023';
    END IF;
    SELECT p.id INTO v_patient FROM switchboard.patients p WHERE p.external_ref = patient_external_ref;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'patient_external_ref names no patient: call upsert_patient first' USING ERRCODE = '22023';
    END IF;
    v_token := switchboard.random_token();
    INSERT INTO switchboard.connect_links (token_hash, patient_id, provider, expires_at)
    VALUES (sha256(convert_to(v_token, 'UTF8')), v_patient, wearables_connect_link.provider, now() + ttl);
    RETURN v_token;
END
$$;
-- +goose StatementEnd

-- wearables_upload_token issues an Apple Health upload token for one
-- patient, creating the patient's apple_health connection (active) when
-- needed. Only its sha256 is stored: the token is shown once.
-- +goose StatementBegin
CREATE FUNCTION switchboard.wearables_upload_token(patient_external_ref text)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_patient bigint;
    v_conn    bigint;
    v_token   text;
BEGIN
    IF patient_external_ref IS NULL OR btrim(patient_external_ref) = '' THEN
        RAISE EXCEPTION 'patient_external_ref is required' USING ERRCODE = '22023';
    END IF;
    SELECT p.id INTO v_patient FROM switchboard.patients p WHERE p.external_ref = patient_external_ref;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'patient_external_ref names no patient: call upsert_patient first' USING ERRCODE = '22023';
    END IF;
    INSERT INTO switchboard.device_connections AS c (patient_id, provider, status, connected_at)
    VALUES (v_patient, 'apple_health', 'active', now())
    ON CONFLICT (patient_id, provider) DO UPDATE
    SET status = 'active', status_reason = NULL, revoked_at = NULL, updated_at = now(),
        connected_at = coalesce(c.connected_at, now())
    RETURNING c.id INTO v_conn;
    v_token := switchboard.random_token();
    INSERT INTO switchboard.upload_tokens (connection_id, token_hash)
    VALUES (v_conn, sha256(convert_to(v_token, 'UTF8')));
    RETURN v_token;
END
$$;
-- +goose StatementEnd

-- wearables_disconnect ends a connection: status revoked, upload tokens
-- revoked, and for Google a wearable_revoke job that revokes the token at
-- Google and erases it. Audited. Returns false when it was already revoked.
-- +goose StatementBegin
CREATE FUNCTION switchboard.wearables_disconnect(connection_id bigint, actor text)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_conn switchboard.device_connections;
BEGIN
    IF actor IS NULL OR btrim(actor) = '' THEN
        RAISE EXCEPTION 'actor is required' USING ERRCODE = '22023';
    END IF;
    IF connection_id IS NULL THEN
        RAISE EXCEPTION 'connection_id is required' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO v_conn FROM switchboard.device_connections c WHERE c.id = wearables_disconnect.connection_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'connection_id % does not exist', connection_id USING ERRCODE = '22023';
    END IF;
    IF v_conn.status = 'revoked' THEN
        RETURN false;
    END IF;
    UPDATE switchboard.device_connections
    SET status = 'revoked', status_reason = 'disconnected', revoked_at = now(), updated_at = now()
    WHERE id = v_conn.id;
    UPDATE switchboard.upload_tokens SET revoked_at = now()
    WHERE upload_tokens.connection_id = v_conn.id AND revoked_at IS NULL;
    IF v_conn.refresh_token_sealed IS NOT NULL OR v_conn.access_token_sealed IS NOT NULL THEN
        PERFORM switchboard.insert_job('wearable_revoke', jsonb_build_object('connection_id', v_conn.id));
    END IF;
    INSERT INTO switchboard.audit_log (actor, action, target_type, target_id, detail)
    VALUES (actor, 'wearables.disconnect', 'device_connection', v_conn.id::text,
            jsonb_build_object('provider', v_conn.provider, 'patient_id', v_conn.patient_id));
    PERFORM switchboard.emit_event('device.disconnected', 'patient/' || v_conn.patient_id,
        jsonb_build_object('connection_id', v_conn.id, 'provider', v_conn.provider));
    RETURN true;
END
$$;
-- +goose StatementEnd

-- observation_mark_entered_in_error marks an observation entered-in-error
-- (its source deleted the sample) and enqueues the FHIR push of that
-- correction. Returns false when it already was. Internal (workers).
-- +goose StatementBegin
CREATE FUNCTION switchboard.observation_mark_entered_in_error(observation_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_status text;
BEGIN
    IF observation_id IS NULL THEN
        RAISE EXCEPTION 'observation_id is required' USING ERRCODE = '22023';
    END IF;
    SELECT o.status INTO v_status FROM switchboard.observations o
    WHERE o.id = observation_mark_entered_in_error.observation_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'observation_id % does not exist', observation_id USING ERRCODE = '22023';
    END IF;
    IF v_status = 'entered-in-error' THEN
        RETURN false;
    END IF;
    UPDATE switchboard.observations SET status = 'entered-in-error', updated_at = now()
    WHERE id = observation_mark_entered_in_error.observation_id;
    PERFORM switchboard.fhir_enqueue_push('observation', observation_mark_entered_in_error.observation_id, 'Observation');
    RETURN true;
END
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION switchboard.random_token() FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.wearables_connect_link(text, text, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.wearables_upload_token(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.wearables_disconnect(bigint, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.observation_mark_entered_in_error(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION switchboard.wearables_connect_link(text, text, interval),
    switchboard.wearables_upload_token(text), switchboard.wearables_disconnect(bigint, text)
    TO switchboard_app, switchboard_worker;
GRANT EXECUTE ON FUNCTION switchboard.wearables_disconnect(bigint, text) TO switchboard_operator;
GRANT EXECUTE ON FUNCTION switchboard.observation_mark_entered_in_error(bigint), switchboard.random_token()
    TO switchboard_worker;

GRANT SELECT, INSERT, UPDATE, DELETE ON switchboard.device_connections, switchboard.connect_links,
    switchboard.oauth_states, switchboard.upload_tokens, switchboard.apple_health_uploads,
    switchboard.wearable_samples TO switchboard_worker;
-- Operators see connections but not sealed tokens.
GRANT SELECT (id, patient_id, provider, external_user_id, status, status_reason, scopes, token_key_id,
              token_expires_at, cursors, time_zone, last_sync_at, last_data_at, stale_since,
              consecutive_failures, last_error_class, last_error_at, retry_after, reauth_count,
              connected_at, revoked_at, created_at, updated_at)
    ON switchboard.device_connections TO switchboard_operator;
GRANT SELECT ON switchboard.apple_health_uploads, switchboard.wearable_samples TO switchboard_operator;

-- +goose Down
DROP FUNCTION switchboard.observation_mark_entered_in_error(bigint);
DROP FUNCTION switchboard.wearables_disconnect(bigint, text);
DROP FUNCTION switchboard.wearables_upload_token(text);
DROP FUNCTION switchboard.wearables_connect_link(text, text, interval);
DROP FUNCTION switchboard.random_token();
DELETE FROM switchboard.job_kinds WHERE kind IN ('wearable_sync', 'wearable_backfill', 'wearable_notification',
    'wearable_summarize', 'wearable_poll', 'wearable_revoke', 'apple_health_ingest');
ALTER TABLE switchboard.observations
    DROP COLUMN summary_max, DROP COLUMN summary_min, DROP COLUMN summary_count, DROP COLUMN summary_period,
    DROP COLUMN utc_offset_seconds, DROP COLUMN interpretation, DROP COLUMN status;
DROP TABLE switchboard.wearable_samples;
DROP TABLE switchboard.apple_health_uploads;
DROP TABLE switchboard.upload_tokens;
DROP TABLE switchboard.oauth_states;
DROP TABLE switchboard.connect_links;
DROP TABLE switchboard.device_connections;

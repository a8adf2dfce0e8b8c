-- The domain data Switchboard maps and pushes to EHRs — patients, their
-- devices and observations — with the SQL API that app services (and the
-- wearables workers) call inside their own transactions, the EHR endpoints
-- those pushes go to, and the links between local rows and EHR resources.
--
-- API functions follow 00011: SECURITY DEFINER with a fixed search_path, not
-- STRICT, SQLSTATE 22023 naming the field for bad input, 23505 for a reused
-- idempotency key (or source id) with other content. Nothing is half-written.
--
-- Pushes are fhir_push jobs, one per (endpoint, entity), inserted in the
-- caller's transaction. A job that is still waiting for the same entity and
-- endpoint is not duplicated: the worker always loads the current row, and
-- pushes nothing when its content hash equals the last one pushed. Data that
-- came from an EHR (source 'ehr:<endpoint>') is never pushed to an EHR.

-- +goose Up

-- observation_kinds: the kinds record_observation accepts, the UCUM units
-- allowed for each, the plausible value range and the LOINC code the FHIR
-- mapper uses. A Go test keeps the mapper's table equal to this one.
CREATE TABLE switchboard.observation_kinds (
    kind          text PRIMARY KEY,
    loinc_code    text NOT NULL,
    loinc_display text NOT NULL,
    -- observation-category code: vital-signs or activity.
    category      text NOT NULL CHECK (category IN ('vital-signs', 'activity')),
    units         text[] NOT NULL CHECK (cardinality(units) > 0),
    min_value     numeric NOT NULL,
    max_value     numeric NOT NULL
);

INSERT INTO switchboard.observation_kinds (kind, loinc_code, loinc_display, category, units, min_value, max_value) VALUES
    ('steps', '41950-7', 'Number of steps in 24 hour Measured', 'activity', ARRAY['/d', '{steps}', '{steps}/d'], 0, 1000000),
    ('heart_rate', '8867-4', 'Heart rate', 'vital-signs', ARRAY['/min'], 0, 400),
    ('resting_heart_rate', '40443-4', 'Heart rate --resting', 'vital-signs', ARRAY['/min'], 0, 400),
    ('respiratory_rate', '9279-1', 'Respiratory rate', 'vital-signs', ARRAY['/min'], 0, 200),
    ('spo2', '2708-6', 'Oxygen saturation in Arterial blood', 'vital-signs', ARRAY['%'], 0, 100),
    ('weight', '29463-7', 'Body weight', 'vital-signs', ARRAY['kg', 'g', '[lb_av]'], 0, 1000000),
    ('body_height', '8302-2', 'Body height', 'vital-signs', ARRAY['cm', '[in_i]'], 0, 1000),
    ('body_temperature', '8310-5', 'Body temperature', 'vital-signs', ARRAY['Cel', '[degF]'], 0, 200),
    ('sleep_duration', '93832-4', 'Sleep duration', 'activity', ARRAY['min', 'h', 's'], 0, 1000000),
    ('blood_pressure_systolic', '8480-6', 'Systolic blood pressure', 'vital-signs', ARRAY['mm[Hg]'], 0, 500),
    ('blood_pressure_diastolic', '8462-4', 'Diastolic blood pressure', 'vital-signs', ARRAY['mm[Hg]'], 0, 500);

CREATE TABLE switchboard.patients (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The app's id for the patient; also the value of the business
    -- identifier Switchboard puts on the FHIR Patient.
    external_ref text NOT NULL UNIQUE CHECK (char_length(external_ref) BETWEEN 1 AND 200),
    given_name   text,
    family_name  text,
    gender       text CHECK (gender IN ('male', 'female', 'other', 'unknown')),
    birth_date   date,
    phone_e164   text CHECK (phone_e164 ~ '^\+[1-9][0-9]{6,14}$'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX patients_phone_idx ON switchboard.patients (phone_e164) WHERE phone_e164 IS NOT NULL;

CREATE TABLE switchboard.devices (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id   bigint NOT NULL REFERENCES switchboard.patients (id),
    -- google_health, apple_health, ...
    source       text NOT NULL CHECK (source ~ '^[a-z][a-z0-9_]{0,39}$'),
    external_id  text NOT NULL CHECK (char_length(external_id) BETWEEN 1 AND 200),
    manufacturer text,
    model        text,
    display_name text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (patient_id, source, external_id)
);

CREATE TABLE switchboard.observations (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id      bigint NOT NULL REFERENCES switchboard.patients (id),
    kind            text NOT NULL REFERENCES switchboard.observation_kinds (kind),
    value           numeric NOT NULL,
    -- UCUM code
    unit            text NOT NULL,
    effective_start timestamptz NOT NULL,
    effective_end   timestamptz CHECK (effective_end >= effective_start),
    device_id       bigint REFERENCES switchboard.devices (id),
    -- app, google_health, apple_health, ehr:<endpoint>
    source          text NOT NULL CHECK (source ~ '^[a-z][a-z0-9_]{0,39}(:[a-z0-9][a-z0-9_.-]{0,62})?$'),
    source_id       text NOT NULL CHECK (char_length(source_id) BETWEEN 1 AND 300),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, source_id)
);
CREATE INDEX observations_patient_idx ON switchboard.observations (patient_id, kind, effective_start);
CREATE INDEX observations_device_idx ON switchboard.observations (device_id) WHERE device_id IS NOT NULL;

-- Signing keys for SMART Backend Services client assertions. The private
-- key is a PKCS#8 DER sealed with internal/secrets (associated data
-- "ehr_signing_keys:<kid>:private_key"); the public JWK is published by
-- `switchboard ehr jwks`.
CREATE TABLE switchboard.ehr_signing_keys (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kid                 text NOT NULL UNIQUE CHECK (kid ~ '^[A-Za-z0-9_-]{8,100}$'),
    alg                 text NOT NULL CHECK (alg IN ('RS384', 'ES384')),
    private_key_sealed  text NOT NULL,
    public_jwk          jsonb NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    retired_at          timestamptz
);

-- EHR endpoints are data, managed with `switchboard ehr ...`.
CREATE TABLE switchboard.ehr_endpoints (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Used in routes (/webhooks/fhir/<name>), the destination ehr:<name> and
    -- its env overrides DEST_EHR_<NAME>_*.
    name                 text NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9-]{0,39}$'),
    base_url             text NOT NULL CHECK (base_url ~ '^https?://[^\s?#]+[^/\s?#]$'),
    auth_kind            text NOT NULL DEFAULT 'none' CHECK (auth_kind IN ('none', 'bearer', 'smart_backend')),
    -- Static bearer token sealed with internal/secrets
    -- (associated data "ehr_endpoints:<name>:bearer_token").
    bearer_token_sealed  text,
    client_id            text,
    -- Token endpoint; NULL means discover it from .well-known/smart-configuration.
    token_url            text CHECK (token_url ~ '^https?://'),
    scopes               text,
    signing_key_id       bigint REFERENCES switchboard.ehr_signing_keys (id),
    -- Resource types pushed to / pulled from this endpoint.
    push_types           text[] NOT NULL DEFAULT '{}',
    pull_types           text[] NOT NULL DEFAULT '{}',
    -- Distributed rate limit of every call to this endpoint, in
    -- internal/ratelimit's text form ("300/min", "10/s burst 5"); NULL: none.
    rate_limit           text,
    -- Business identifier system; NULL: FHIR_IDENTIFIER_SYSTEM.
    identifier_system    text CHECK (identifier_system ~ '^(https?://|urn:)'),
    -- Whether Communication resources carry the SMS body (PHI): off unless
    -- the EHR's agreement says otherwise.
    include_sms_body     boolean NOT NULL DEFAULT false,
    enabled              boolean NOT NULL DEFAULT true,
    -- What `switchboard ehr test` learned from /metadata and
    -- .well-known/smart-configuration. The client never uses an interaction
    -- the server did not declare.
    capabilities         jsonb,
    capabilities_at      timestamptz,
    -- sha256 of the shared secret rest-hook notifications carry.
    webhook_secret_hash  bytea,
    pull_interval        interval NOT NULL DEFAULT interval '5 minutes'
        CHECK (pull_interval >= interval '10 seconds'),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK (push_types <@ ARRAY['Patient', 'Observation', 'Device', 'Communication', 'Consent', '*']::text[]),
    -- Everything pushed refers to the patient: an endpoint that takes any of
    -- it takes Patients too.
    CHECK (cardinality(push_types) = 0 OR 'Patient' = ANY (push_types) OR push_types = ARRAY['*']),
    CHECK (pull_types <@ ARRAY['Patient', 'Observation']::text[]),
    CHECK (auth_kind <> 'bearer' OR bearer_token_sealed IS NOT NULL),
    CHECK (auth_kind <> 'smart_backend' OR (client_id IS NOT NULL AND signing_key_id IS NOT NULL))
);

-- App-built resources handed to push_fhir, kept until pushed.
CREATE TABLE switchboard.fhir_outbound (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key text UNIQUE CHECK (char_length(idempotency_key) BETWEEN 1 AND 200),
    resource_type   text NOT NULL,
    resource        jsonb NOT NULL,
    content_hash    bytea NOT NULL,
    -- NULL: every enabled endpoint whose push_types name the type.
    endpoint_id     bigint REFERENCES switchboard.ehr_endpoints (id),
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- fhir_links: a local entity as it exists on one endpoint.
CREATE TABLE switchboard.fhir_links (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id   bigint NOT NULL REFERENCES switchboard.ehr_endpoints (id),
    -- patient, observation, device, communication (a message), consent (a
    -- patient's SMS consent), outbound (a fhir_outbound row)
    entity        text NOT NULL CHECK (entity IN ('patient', 'observation', 'device', 'communication', 'consent', 'outbound')),
    entity_id     bigint NOT NULL,
    resource_type text NOT NULL,
    resource_id   text NOT NULL,
    -- Opaque; sent back as If-Match W/"<version_id>".
    version_id    text,
    -- sha256 of the resource last pushed: an unchanged entity is not pushed again.
    content_hash  bytea,
    -- The last outcome: pushed, or invalid with a reason (never sent).
    state         text NOT NULL DEFAULT 'pushed' CHECK (state IN ('pushed', 'invalid')),
    reason        text,
    pushed_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (endpoint_id, entity, entity_id)
);
CREATE INDEX fhir_links_resource_idx ON switchboard.fhir_links (endpoint_id, resource_type, resource_id);

INSERT INTO switchboard.job_kinds (kind, queue, priority, max_attempts, subject_type, subject_arg, description, unavailable_limit) VALUES
    ('fhir_push', 'fhir', 3, 12, 'ehr_endpoint', 'endpoint_id',
     'push one local entity (patient, observation, device, communication, consent, app-built resource) to one EHR endpoint',
     interval '24 hours');

-- fhir_enqueue_push inserts a fhir_push job for the entity toward every
-- enabled endpoint that takes p_resource_type (or only p_endpoint_id), unless
-- one is already waiting. Returns how many jobs it inserted. Internal.
-- +goose StatementBegin
CREATE FUNCTION switchboard.fhir_enqueue_push(p_entity text, p_entity_id bigint, p_resource_type text,
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

-- upsert_patient creates the patient with this external_ref or updates it.
-- A NULL argument keeps the stored value (so a caller may only ensure the
-- patient exists). When the patient is new or changed, fhir_push jobs go to
-- every enabled endpoint that takes Patients. Returns the patient id.
-- +goose StatementBegin
CREATE FUNCTION switchboard.upsert_patient(
    external_ref text,
    given_name text DEFAULT NULL,
    family_name text DEFAULT NULL,
    gender text DEFAULT NULL,
    birth_date date DEFAULT NULL,
    phone_e164 text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_old     switchboard.patients;
    v_id      bigint;
    v_changed boolean := false;
BEGIN
    IF external_ref IS NULL OR btrim(external_ref) = '' THEN
        RAISE EXCEPTION 'external_ref is required' USING ERRCODE = '22023';
    END IF;
    IF char_length(external_ref) > 200 THEN
        RAISE EXCEPTION 'external_ref must be at most 200 characters' USING ERRCODE = '22023';
    END IF;
    IF given_name IS NOT NULL AND (btrim(given_name) = '' OR char_length(given_name) > 200) THEN
        RAISE EXCEPTION 'given_name must be 1 to 200 characters when given' USING ERRCODE = '22023';
    END IF;
    IF family_name IS NOT NULL AND (btrim(family_name) = '' OR char_length(family_name) > 200) THEN
        RAISE EXCEPTION 'family_name must be 1 to 200 characters when given' USING ERRCODE = '22023';
    END IF;
    IF gender IS NOT NULL AND gender NOT IN ('male', 'female', 'other', 'unknown') THEN
        RAISE EXCEPTION 'gender must be male, female, other or unknown' USING ERRCODE = '22023';
    END IF;
    IF birth_date IS NOT NULL AND (birth_date > current_date OR birth_date < date '1850-01-01') THEN
        RAISE EXCEPTION 'birth_date must be between 1850-01-01 and today' USING ERRCODE = '22023';
    END IF;
    IF phone_e164 IS NOT NULL AND phone_e164 !~ '^\+[1-9][0-9]{6,14}$' THEN
        RAISE EXCEPTION 'phone_e164 must be + followed by 7 to 15 digits' USING ERRCODE = '22023';
    END IF;

    SELECT * INTO v_old FROM switchboard.patients p WHERE p.external_ref = upsert_patient.external_ref FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO switchboard.patients AS p (external_ref, given_name, family_name, gender, birth_date, phone_e164)
        VALUES (upsert_patient.external_ref, upsert_patient.given_name, upsert_patient.family_name,
                upsert_patient.gender, upsert_patient.birth_date, upsert_patient.phone_e164)
        ON CONFLICT ON CONSTRAINT patients_external_ref_key DO NOTHING
        RETURNING p.id INTO v_id;
        IF v_id IS NOT NULL THEN
            PERFORM switchboard.fhir_enqueue_push('patient', v_id, 'Patient');
            RETURN v_id;
        END IF;
        -- Created concurrently: update it like an existing one.
        SELECT * INTO v_old FROM switchboard.patients p WHERE p.external_ref = upsert_patient.external_ref FOR UPDATE;
    END IF;

    v_changed := (given_name IS NOT NULL AND given_name IS DISTINCT FROM v_old.given_name)
        OR (family_name IS NOT NULL AND family_name IS DISTINCT FROM v_old.family_name)
        OR (gender IS NOT NULL AND gender IS DISTINCT FROM v_old.gender)
        OR (birth_date IS NOT NULL AND birth_date IS DISTINCT FROM v_old.birth_date)
        OR (phone_e164 IS NOT NULL AND phone_e164 IS DISTINCT FROM v_old.phone_e164);
    IF v_changed THEN
        UPDATE switchboard.patients p
        SET given_name = coalesce(upsert_patient.given_name, p.given_name),
            family_name = coalesce(upsert_patient.family_name, p.family_name),
            gender = coalesce(upsert_patient.gender, p.gender),
            birth_date = coalesce(upsert_patient.birth_date, p.birth_date),
            phone_e164 = coalesce(upsert_patient.phone_e164, p.phone_e164),
            updated_at = now()
        WHERE p.id = v_old.id;
        PERFORM switchboard.fhir_enqueue_push('patient', v_old.id, 'Patient');
    END IF;
    RETURN v_old.id;
END
$$;
-- +goose StatementEnd

-- record_observation records one measurement of a known patient and returns
-- its id. It is idempotent by (source, source_id): the same content returns
-- the same id and enqueues nothing; other values for the same source_id
-- (a day's step count that grew) update the row and push it again; a
-- source_id already used for another patient or kind raises 23505.
-- source 'app' may omit source_id: it is then derived from the patient, kind,
-- effective times and device, so the app re-recording a measurement of the
-- same time updates it. Every other source must give its own id.
-- Observations whose source is an EHR ('ehr:<endpoint>') are never pushed.
-- +goose StatementBegin
CREATE FUNCTION switchboard.record_observation(
    patient_external_ref text,
    kind text,
    value numeric,
    unit text,
    effective_start timestamptz,
    effective_end timestamptz DEFAULT NULL,
    source text DEFAULT 'app',
    source_id text DEFAULT NULL,
    device_id bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_patient  bigint;
    v_kind     switchboard.observation_kinds;
    v_source   text := coalesce(record_observation.source, 'app');
    v_sid      text := record_observation.source_id;
    v_old      switchboard.observations;
    v_id       bigint;
BEGIN
    IF patient_external_ref IS NULL OR btrim(patient_external_ref) = '' THEN
        RAISE EXCEPTION 'patient_external_ref is required' USING ERRCODE = '22023';
    END IF;
    SELECT p.id INTO v_patient FROM switchboard.patients p WHERE p.external_ref = patient_external_ref;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'patient_external_ref names no patient: call upsert_patient first' USING ERRCODE = '22023';
    END IF;
    IF kind IS NULL THEN
        RAISE EXCEPTION 'kind is required' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO v_kind FROM switchboard.observation_kinds k WHERE k.kind = record_observation.kind;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'kind % is not an observation kind (see switchboard.observation_kinds)', kind USING ERRCODE = '22023';
    END IF;
    IF unit IS NULL THEN
        RAISE EXCEPTION 'unit is required' USING ERRCODE = '22023';
    END IF;
    IF NOT unit = ANY (v_kind.units) THEN
        RAISE EXCEPTION 'unit % is not a UCUM unit of % (want one of %)', unit, kind, array_to_string(v_kind.units, ', ')
            USING ERRCODE = '22023';
    END IF;
    IF value IS NULL THEN
        RAISE EXCEPTION 'value is required' USING ERRCODE = '22023';
    END IF;
    -- The value itself is clinical data: not echoed.
    IF value < v_kind.min_value OR value > v_kind.max_value THEN
        RAISE EXCEPTION 'value is out of range for % (% to %)', kind, v_kind.min_value, v_kind.max_value
            USING ERRCODE = '22023';
    END IF;
    IF effective_start IS NULL THEN
        RAISE EXCEPTION 'effective_start is required' USING ERRCODE = '22023';
    END IF;
    IF effective_start = '-infinity' OR effective_start = 'infinity' THEN
        RAISE EXCEPTION 'effective_start must be a finite time' USING ERRCODE = '22023';
    END IF;
    IF effective_start > now() + interval '1 day' THEN
        RAISE EXCEPTION 'effective_start must not be in the future' USING ERRCODE = '22023';
    END IF;
    IF effective_end IS NOT NULL AND (effective_end < effective_start OR effective_end = 'infinity') THEN
        RAISE EXCEPTION 'effective_end must be a finite time not before effective_start' USING ERRCODE = '22023';
    END IF;
    IF v_source !~ '^[a-z][a-z0-9_]{0,39}(:[a-z0-9][a-z0-9_.-]{0,62})?$' THEN
        RAISE EXCEPTION 'source must be app, a wearable source such as google_health, or ehr:<endpoint>' USING ERRCODE = '22023';
    END IF;
    IF device_id IS NOT NULL AND NOT EXISTS (
        SELECT FROM switchboard.devices d WHERE d.id = record_observation.device_id AND d.patient_id = v_patient) THEN
        RAISE EXCEPTION 'device_id % is not a device of this patient', device_id USING ERRCODE = '22023';
    END IF;
    IF v_sid IS NULL THEN
        IF v_source <> 'app' THEN
            RAISE EXCEPTION 'source_id is required for source %', v_source USING ERRCODE = '22023';
        END IF;
        v_sid := 'derived:' || encode(sha256(convert_to(jsonb_build_array(v_patient, kind,
            extract(epoch FROM effective_start), extract(epoch FROM effective_end), device_id)::text, 'UTF8')), 'hex');
    ELSIF btrim(v_sid) = '' OR char_length(v_sid) > 300 THEN
        RAISE EXCEPTION 'source_id must be 1 to 300 characters' USING ERRCODE = '22023';
    END IF;

    SELECT * INTO v_old FROM switchboard.observations o
    WHERE o.source = v_source AND o.source_id = v_sid FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO switchboard.observations AS o
            (patient_id, kind, value, unit, effective_start, effective_end, device_id, source, source_id)
        VALUES (v_patient, kind, value, unit, effective_start, effective_end, device_id, v_source, v_sid)
        ON CONFLICT ON CONSTRAINT observations_source_source_id_key DO NOTHING
        RETURNING o.id INTO v_id;
        IF v_id IS NULL THEN
            SELECT * INTO v_old FROM switchboard.observations o
            WHERE o.source = v_source AND o.source_id = v_sid FOR UPDATE;
        END IF;
    END IF;
    IF v_id IS NULL THEN
        IF v_old.patient_id <> v_patient OR v_old.kind <> kind THEN
            RAISE EXCEPTION 'source_id was already used for another patient or kind' USING ERRCODE = '23505';
        END IF;
        IF v_old.value = value AND v_old.unit = unit AND v_old.effective_start = effective_start
           AND v_old.effective_end IS NOT DISTINCT FROM effective_end
           AND v_old.device_id IS NOT DISTINCT FROM device_id THEN
            RETURN v_old.id;
        END IF;
        UPDATE switchboard.observations o
        SET value = record_observation.value, unit = record_observation.unit,
            effective_start = record_observation.effective_start, effective_end = record_observation.effective_end,
            device_id = record_observation.device_id, updated_at = now()
        WHERE o.id = v_old.id;
        v_id := v_old.id;
    END IF;
    IF v_source NOT LIKE 'ehr:%' THEN
        PERFORM switchboard.fhir_enqueue_push('observation', v_id, 'Observation');
    END IF;
    RETURN v_id;
END
$$;
-- +goose StatementEnd

-- push_fhir queues an app-built resource for the EHRs and returns its
-- fhir_outbound id. Checked here: a JSON object with a resourceType and no
-- id (Switchboard decides between create and update through its business
-- identifier). The worker validates it fully before sending; an invalid
-- resource becomes a dead letter with the reason and is never sent. With
-- endpoint_name it goes to that endpoint only; otherwise to every enabled
-- endpoint whose push_types name its type. The same idempotency_key with the
-- same resource returns the same id; with another resource it raises 23505.
-- +goose StatementBegin
CREATE FUNCTION switchboard.push_fhir(resource jsonb, endpoint_name text DEFAULT NULL, idempotency_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_type     text;
    v_endpoint bigint;
    v_hash     bytea;
    v_old      switchboard.fhir_outbound;
    v_id       bigint;
BEGIN
    IF resource IS NULL THEN
        RAISE EXCEPTION 'resource is required' USING ERRCODE = '22023';
    END IF;
    IF jsonb_typeof(resource) <> 'object' THEN
        RAISE EXCEPTION 'resource must be a JSON object' USING ERRCODE = '22023';
    END IF;
    v_type := resource ->> 'resourceType';
    IF jsonb_typeof(resource -> 'resourceType') IS DISTINCT FROM 'string' OR v_type !~ '^[A-Z][A-Za-z]{1,63}$' THEN
        RAISE EXCEPTION 'resource.resourceType is required and must name a FHIR resource type' USING ERRCODE = '22023';
    END IF;
    IF v_type IN ('Bundle', 'Parameters', 'OperationOutcome') THEN
        RAISE EXCEPTION 'resource.resourceType % cannot be pushed: push each resource on its own', v_type USING ERRCODE = '22023';
    END IF;
    IF resource ? 'id' THEN
        RAISE EXCEPTION 'resource.id must be absent: Switchboard creates or updates through its business identifier'
            USING ERRCODE = '22023';
    END IF;
    IF octet_length(resource::text) > 1000000 THEN
        RAISE EXCEPTION 'resource must be at most 1 MB' USING ERRCODE = '22023';
    END IF;
    IF idempotency_key IS NOT NULL AND (btrim(idempotency_key) = '' OR char_length(idempotency_key) > 200) THEN
        RAISE EXCEPTION 'idempotency_key must be 1 to 200 characters when given' USING ERRCODE = '22023';
    END IF;
    IF endpoint_name IS NOT NULL THEN
        SELECT e.id INTO v_endpoint FROM switchboard.ehr_endpoints e WHERE e.name = endpoint_name AND e.enabled;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'endpoint_name names no enabled EHR endpoint' USING ERRCODE = '22023';
        END IF;
    END IF;
    v_hash := sha256(convert_to(jsonb_build_array(resource, endpoint_name)::text, 'UTF8'));

    IF idempotency_key IS NOT NULL THEN
        INSERT INTO switchboard.fhir_outbound AS o (idempotency_key, resource_type, resource, content_hash, endpoint_id)
        VALUES (push_fhir.idempotency_key, v_type, push_fhir.resource, v_hash, v_endpoint)
        ON CONFLICT ON CONSTRAINT fhir_outbound_idempotency_key_key DO NOTHING
        RETURNING o.id INTO v_id;
        IF v_id IS NULL THEN
            SELECT * INTO v_old FROM switchboard.fhir_outbound o WHERE o.idempotency_key = push_fhir.idempotency_key;
            IF v_old.content_hash <> v_hash THEN
                RAISE EXCEPTION 'idempotency_key was already used for another resource' USING ERRCODE = '23505';
            END IF;
            RETURN v_old.id;
        END IF;
    ELSE
        INSERT INTO switchboard.fhir_outbound AS o (resource_type, resource, content_hash, endpoint_id)
        VALUES (v_type, push_fhir.resource, v_hash, v_endpoint)
        RETURNING o.id INTO v_id;
    END IF;
    PERFORM switchboard.fhir_enqueue_push('outbound', v_id, v_type, v_endpoint);
    RETURN v_id;
END
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION switchboard.fhir_enqueue_push(text, bigint, text, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.upsert_patient(text, text, text, text, date, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.record_observation(text, text, numeric, text, timestamptz, timestamptz, text, text, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.push_fhir(jsonb, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION switchboard.upsert_patient(text, text, text, text, date, text),
    switchboard.record_observation(text, text, numeric, text, timestamptz, timestamptz, text, text, bigint),
    switchboard.push_fhir(jsonb, text, text)
    TO switchboard_app, switchboard_worker;
GRANT EXECUTE ON FUNCTION switchboard.fhir_enqueue_push(text, bigint, text, bigint) TO switchboard_worker;

GRANT SELECT, INSERT, UPDATE, DELETE ON switchboard.patients, switchboard.devices, switchboard.observations,
    switchboard.ehr_endpoints, switchboard.ehr_signing_keys, switchboard.fhir_outbound, switchboard.fhir_links
    TO switchboard_worker;
GRANT SELECT ON switchboard.observation_kinds TO switchboard_worker, switchboard_operator, switchboard_app;
GRANT SELECT ON switchboard.patients, switchboard.devices, switchboard.observations, switchboard.fhir_links
    TO switchboard_operator;
-- Operators see endpoints but not sealed secrets.
GRANT SELECT (id, name, base_url, auth_kind, client_id, token_url, scopes, signing_key_id, push_types, pull_types,
              rate_limit, identifier_system, include_sms_body, enabled, capabilities, capabilities_at,
              pull_interval, created_at, updated_at)
    ON switchboard.ehr_endpoints TO switchboard_operator;
GRANT SELECT (id, kid, alg, public_jwk, created_at, retired_at) ON switchboard.ehr_signing_keys TO switchboard_operator;

-- +goose Down
DROP FUNCTION switchboard.push_fhir(jsonb, text, text);
DROP FUNCTION switchboard.record_observation(text, text, numeric, text, timestamptz, timestamptz, text, text, bigint);
DROP FUNCTION switchboard.upsert_patient(text, text, text, text, date, text);
DROP FUNCTION switchboard.fhir_enqueue_push(text, bigint, text, bigint);
DELETE FROM switchboard.job_kinds WHERE kind = 'fhir_push';
DROP TABLE switchboard.fhir_links;
DROP TABLE switchboard.fhir_outbound;
DROP TABLE switchboard.ehr_endpoints;
DROP TABLE switchboard.ehr_signing_keys;
DROP TABLE switchboard.observations;
DROP TABLE switchboard.devices;
DROP TABLE switchboard.patients;
DROP TABLE switchboard.observation_kinds;

-- PHI-minimal roles (issue 15, item 3).
--
-- switchboard_operator sees what operating needs (states, kinds, counts,
-- ids, errors, dead letters) and no message bodies or numbers, patient
-- names, birth dates, phones, raw inbound SMS, webhook bodies, FHIR
-- resources or observation values. What it may read is data:
-- switchboard.column_access lists, per table, the columns it may select
-- ('*': every column); a table or column not listed there is denied
-- (default deny), so a table a later migration adds stays closed to
-- operators until that migration lists it.
--
-- switchboard_phi_reader, for the rare case that needs PHI (a clinical
-- review, a subject-access request), may select every column except
-- secrets: columns listed as 'secret' in column_access and any column
-- whose name says sealed, secret, password, private_key or *_hash of a
-- token or state. It is read-only and has none of the operator's functions.
--
-- SECURITY DEFINER functions are owned by switchboard_definer, a NOLOGIN,
-- non-superuser role holding only DML on the schema's tables and sequences,
-- instead of whoever ran the migrations (a superuser in the defaults).
--
-- Every migration numbered 00090 or later that adds a table, a column or a
-- SECURITY DEFINER function ends with
--     SELECT switchboard.apply_role_grants();
--     SELECT switchboard.secure_definer_functions();
-- (after INSERTing its operator columns into switchboard.column_access).

-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'switchboard_phi_reader') THEN
    CREATE ROLE switchboard_phi_reader NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'switchboard_definer') THEN
    CREATE ROLE switchboard_definer NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
  END IF;
END
$$;
-- +goose StatementEnd

CREATE TABLE switchboard.column_access (
    table_name  text NOT NULL,
    column_name text NOT NULL, -- '*': every column of the table
    access      text NOT NULL CHECK (access IN ('operator', 'secret')),
    PRIMARY KEY (table_name, column_name)
);
COMMENT ON TABLE switchboard.column_access IS
    'operator: switchboard_operator (and switchboard_phi_reader) may select the column; secret: no read role may; unlisted: switchboard_phi_reader only. Applied by switchboard.apply_role_grants().';

INSERT INTO switchboard.column_access (table_name, column_name, access)
SELECT t, c, 'operator'
FROM (VALUES
    ('apple_health_uploads', '{id,connection_id,sample_count,new_count,deleted,state,received_at,processed_at}'),
    ('audit_log', '{id,actor,action,target_type,target_id,at}'),
    ('column_access', '{*}'),
    ('connect_links', '{patient_id,provider,created_at,expires_at,uses,last_used_at}'),
    ('dead_letters', '{*}'),
    ('destination_health', '{*}'),
    ('device_connections', '{id,patient_id,provider,status,status_reason,scopes,token_key_id,token_expires_at,last_sync_at,last_data_at,stale_since,consecutive_failures,last_error_class,last_error_at,retry_after,reauth_count,connected_at,revoked_at,created_at,updated_at}'),
    ('deployment', '{*}'),
    ('devices', '{id,patient_id,source,manufacturer,model,created_at,updated_at}'),
    ('ehr_endpoints', '{id,name,base_url,auth_kind,client_id,token_url,scopes,signing_key_id,push_types,pull_types,rate_limit,identifier_system,include_sms_body,enabled,capabilities,capabilities_at,pull_interval,created_at,updated_at,legacy_identifier_system,write_plan,retired_at}'),
    ('ehr_signing_keys', '{id,kid,alg,public_jwk,created_at,retired_at}'),
    ('events', '{id,kind,subject,occurred_at}'),
    ('fhir_inbound', '{id,endpoint_id,resource_type,resource_id,version_id,last_updated,state,reason,patient_id,received_at,raw_erased_at}'),
    ('fhir_links', '{*}'),
    ('fhir_outbound', '{id,idempotency_key,resource_type,content_hash,endpoint_id,created_at}'),
    ('fhir_pull_cursors', '{*}'),
    ('fhir_resource_types', '{*}'),
    ('inbound_messages', '{id,provider,provider_message_id,webhook_id,received_at,keyword,message_id}'),
    ('inbound_webhooks', '{id,provider,provider_event_id,event_type,state,received_at,processed_at,body_erased_at}'),
    ('job_kinds', '{*}'),
    ('message_attempts', '{*}'),
    ('message_events', '{*}'),
    ('messages', '{id,idempotency_key,status,provider,provider_message_id,error_code,error_reason,segments,not_before,not_after,job_id,created_at,updated_at,accepted_at,final_at,body_erased_at,purpose,encoding,reconciled_at}'),
    ('oauth_states', '{patient_id,provider,created_at,expires_at,used_at}'),
    ('observation_kinds', '{*}'),
    ('observations', '{id,patient_id,kind,device_id,source,status,created_at,updated_at}'),
    ('patients', '{id,created_at,updated_at}'),
    ('rate_limits', '{*}'),
    ('river_client', '{*}'),
    ('river_client_queue', '{*}'),
    ('river_job', '{*}'),
    ('river_leader', '{*}'),
    ('river_migration', '{*}'),
    ('river_notification', '{*}'),
    ('river_queue', '{*}'),
    ('sms_consent', '{opted_out,source,updated_at}'),
    ('vendor_destinations', '{*}'),
    ('upload_tokens', '{id,connection_id,created_at,revoked_at,last_used_at}'),
    ('wearable_samples', '{id,connection_id,patient_id,kind,source,device_id,rejection_reason,status,high_frequency,summarized,upload_id,observation_id,received_at}')
) AS v(t, cols), unnest(cols::text[]) AS c;

INSERT INTO switchboard.column_access (table_name, column_name, access) VALUES
    ('device_connections', 'access_token_sealed', 'secret'),
    ('device_connections', 'refresh_token_sealed', 'secret'),
    ('ehr_endpoints', 'bearer_token_sealed', 'secret'),
    ('ehr_endpoints', 'webhook_secret_hash', 'secret'),
    ('ehr_signing_keys', 'private_key_sealed', 'secret'),
    ('oauth_states', 'state_hash', 'secret'),
    ('oauth_states', 'code_verifier_sealed', 'secret'),
    ('connect_links', 'token_hash', 'secret'),
    ('upload_tokens', 'token_hash', 'secret');

-- apply_role_grants makes the read roles' privileges on every table of the
-- schema match column_access, and gives switchboard_definer what the
-- SECURITY DEFINER functions need. Idempotent; migrations call it at their
-- end. It runs as the migrating user (the tables' owner).
-- +goose StatementBegin
CREATE FUNCTION switchboard.apply_role_grants()
RETURNS void
LANGUAGE plpgsql
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    r    record;
    cols text;
BEGIN
    FOR r IN
        SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'switchboard' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
        ORDER BY c.relname
    LOOP
        -- Table-level REVOKE ALL also clears column grants: start from nothing.
        EXECUTE format('REVOKE ALL ON switchboard.%I FROM switchboard_operator, switchboard_phi_reader', r.relname);

        SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
        FROM pg_attribute a
        WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
          AND EXISTS (SELECT FROM switchboard.column_access ca
                      WHERE ca.table_name = r.relname AND ca.access = 'operator' AND ca.column_name IN (a.attname, '*'))
          AND NOT EXISTS (SELECT FROM switchboard.column_access ca
                          WHERE ca.table_name = r.relname AND ca.access = 'secret' AND ca.column_name = a.attname);
        IF cols IS NOT NULL THEN
            EXECUTE format('GRANT SELECT (%s) ON switchboard.%I TO switchboard_operator', cols, r.relname);
        END IF;

        SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
        FROM pg_attribute a
        WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
          AND NOT EXISTS (SELECT FROM switchboard.column_access ca
                          WHERE ca.table_name = r.relname AND ca.access = 'secret' AND ca.column_name IN (a.attname, '*'))
          AND a.attname !~ '(sealed|secret|password|private_key|token_hash|state_hash)';
        IF cols IS NOT NULL THEN
            EXECUTE format('GRANT SELECT (%s) ON switchboard.%I TO switchboard_phi_reader', cols, r.relname);
        END IF;
    END LOOP;
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA switchboard FROM switchboard_operator, switchboard_phi_reader;
    GRANT USAGE ON SCHEMA switchboard TO switchboard_operator, switchboard_phi_reader;

    -- The owner of the SECURITY DEFINER functions: DML, sequences and the
    -- schema's functions, nothing else. CREATE on the schema is what
    -- PostgreSQL asks of a function's new owner.
    GRANT USAGE, CREATE ON SCHEMA switchboard TO switchboard_definer;
    GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA switchboard TO switchboard_definer;
    GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA switchboard TO switchboard_definer;
    GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA switchboard TO switchboard_definer;
END
$$;
-- +goose StatementEnd

-- secure_definer_functions gives every SECURITY DEFINER function of the
-- schema to switchboard_definer. Idempotent; migrations call it at their
-- end. The migrating user must be a superuser or able to administer
-- switchboard_definer (it is made a member when it is not one).
-- +goose StatementBegin
CREATE FUNCTION switchboard.secure_definer_functions()
RETURNS void
LANGUAGE plpgsql
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    IF NOT pg_has_role(current_user, 'switchboard_definer', 'MEMBER') THEN
        EXECUTE format('GRANT switchboard_definer TO %I', current_user);
    END IF;
    FOR r IN
        SELECT p.oid::regprocedure AS fn FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'switchboard' AND p.prosecdef AND p.proowner <> 'switchboard_definer'::regrole
        ORDER BY 1
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO switchboard_definer', r.fn);
    END LOOP;
END
$$;
-- +goose StatementEnd

REVOKE ALL ON FUNCTION switchboard.apply_role_grants() FROM PUBLIC;
REVOKE ALL ON FUNCTION switchboard.secure_definer_functions() FROM PUBLIC;

SELECT switchboard.apply_role_grants();
SELECT switchboard.secure_definer_functions();

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT p.oid::regprocedure AS fn FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'switchboard' AND p.proowner = 'switchboard_definer'::regrole
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO %I', r.fn, current_user);
    END LOOP;
END
$$;
-- +goose StatementEnd
REVOKE ALL ON ALL TABLES IN SCHEMA switchboard FROM switchboard_definer, switchboard_phi_reader;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA switchboard FROM switchboard_definer;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA switchboard FROM switchboard_definer;
REVOKE ALL ON SCHEMA switchboard FROM switchboard_definer, switchboard_phi_reader;
-- Operators as before 00090: every table, sealed secrets and raw bodies excepted.
GRANT SELECT ON ALL TABLES IN SCHEMA switchboard TO switchboard_operator;
REVOKE ALL ON switchboard.ehr_endpoints, switchboard.ehr_signing_keys, switchboard.device_connections,
    switchboard.fhir_inbound, switchboard.oauth_states, switchboard.connect_links, switchboard.upload_tokens,
    switchboard.column_access FROM switchboard_operator;
GRANT SELECT (id, name, base_url, auth_kind, client_id, token_url, scopes, signing_key_id, push_types, pull_types,
              rate_limit, identifier_system, include_sms_body, enabled, capabilities, capabilities_at,
              pull_interval, created_at, updated_at)
    ON switchboard.ehr_endpoints TO switchboard_operator;
GRANT SELECT (id, kid, alg, public_jwk, created_at, retired_at) ON switchboard.ehr_signing_keys TO switchboard_operator;
GRANT SELECT (id, patient_id, provider, external_user_id, status, status_reason, scopes, token_key_id,
              token_expires_at, cursors, time_zone, last_sync_at, last_data_at, stale_since,
              consecutive_failures, last_error_class, last_error_at, retry_after, reauth_count,
              connected_at, revoked_at, created_at, updated_at)
    ON switchboard.device_connections TO switchboard_operator;
GRANT SELECT (id, endpoint_id, resource_type, resource_id, version_id, last_updated, state, reason, patient_id,
              received_at) ON switchboard.fhir_inbound TO switchboard_operator;
DROP FUNCTION switchboard.secure_definer_functions();
DROP FUNCTION switchboard.apply_role_grants();
DROP TABLE switchboard.column_access;

-- Apple Health upload tokens expire (90 days after issue) and rotate:
-- issuing a new token for a patient leaves the previous live ones working
-- for one hour of grace (revoked_at set one hour ahead), so an app can swap
-- tokens without a failed upload. Checking a token is read-only (the api
-- records last_used_at only inside an accepted upload's transaction).

-- +goose Up
ALTER TABLE switchboard.upload_tokens ADD COLUMN expires_at timestamptz;
UPDATE switchboard.upload_tokens SET expires_at = now() + interval '90 days';
ALTER TABLE switchboard.upload_tokens ALTER COLUMN expires_at SET NOT NULL;

-- wearables_upload_token issues an Apple Health upload token for one
-- patient, valid 90 days, creating the patient's apple_health connection
-- (active) when needed; the patient's earlier live tokens stop working an
-- hour later (rotation grace). Only its sha256 is stored: it is shown once.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION switchboard.wearables_upload_token(patient_external_ref text)
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
    UPDATE switchboard.upload_tokens t SET revoked_at = now() + interval '1 hour'
    WHERE t.connection_id = v_conn AND t.revoked_at IS NULL AND t.expires_at > now();
    v_token := switchboard.random_token();
    INSERT INTO switchboard.upload_tokens (connection_id, token_hash, expires_at)
    VALUES (v_conn, sha256(convert_to(v_token, 'UTF8')), now() + interval '90 days');
    RETURN v_token;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION switchboard.wearables_upload_token(patient_external_ref text)
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
ALTER TABLE switchboard.upload_tokens DROP COLUMN expires_at;

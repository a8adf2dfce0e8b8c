-- An EHR endpoint's identifier system cannot be the documentation's example
-- (issue 13). Two deployments that both used https://switchboard.example/...
-- wrote the same identifiers on a shared EHR and overwrote each other's
-- resources. `switchboard ehr add` refuses it; this trigger refuses it on
-- any insert, or update that sets the column, however it is written. Rows
-- that already hold it are not rewritten (their resources on the EHR carry
-- it, and a new system would create them again); updates of their other
-- columns, such as enable or disable, still work.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION switchboard.refuse_example_identifier_system()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = switchboard, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'identifier_system must not be the documentation''s example (https://switchboard.example/...): two deployments with it overwrite each other''s resources on a shared EHR; use NULL (the deployment''s urn:uuid) or a system of your own'
        USING ERRCODE = '22023';
END
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION switchboard.refuse_example_identifier_system() FROM PUBLIC;

CREATE TRIGGER ehr_endpoints_identifier_not_example
    BEFORE INSERT OR UPDATE OF identifier_system ON switchboard.ehr_endpoints
    FOR EACH ROW WHEN (NEW.identifier_system ~ '^https://switchboard\.example/')
    EXECUTE FUNCTION switchboard.refuse_example_identifier_system();

-- +goose Down
DROP TRIGGER ehr_endpoints_identifier_not_example ON switchboard.ehr_endpoints;
DROP FUNCTION switchboard.refuse_example_identifier_system();

-- FHIR writes that never destroy data (issue 13, write side).
--
-- deployment: this installation's identity, generated once here. Switchboard's
-- default business identifier system is urn:uuid:<id>, so two deployments
-- writing to one EHR never share identifiers (FHIR_IDENTIFIER_SYSTEM or an
-- endpoint's identifier_system may still name one explicitly).
--
-- ehr_endpoints.legacy_identifier_system: endpoints that already pushed
-- before this migration ran with no identifier system of their own keep the
-- one they used (the old default), so their resources still match.
-- ehr_endpoints.write_plan: what `switchboard ehr check` decided from the
-- CapabilityStatement (update by PUT with If-Match or by JSON Patch, …); the
-- writer follows it. ehr_endpoints.retired_at: `ehr disable --drop`; a
-- disabled endpoint without it holds its pushes until enabled.
--
-- fhir_links.owned_hashes: per element Switchboard owns, the hash of the
-- value it last wrote; an update writes only the owned elements whose value
-- changed since (fhir.Owned), everything else stays as the EHR holds it.

-- +goose Up
CREATE TABLE switchboard.deployment (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    id         uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO switchboard.deployment DEFAULT VALUES;

ALTER TABLE switchboard.ehr_endpoints
    ADD COLUMN legacy_identifier_system boolean NOT NULL DEFAULT false,
    ADD COLUMN write_plan jsonb,
    ADD COLUMN retired_at timestamptz;
UPDATE switchboard.ehr_endpoints e SET legacy_identifier_system = true
WHERE e.identifier_system IS NULL AND EXISTS (SELECT FROM switchboard.fhir_links l WHERE l.endpoint_id = e.id);

ALTER TABLE switchboard.fhir_links ADD COLUMN owned_hashes jsonb;

GRANT SELECT ON switchboard.deployment TO switchboard_worker, switchboard_operator, switchboard_app;
GRANT SELECT (legacy_identifier_system, write_plan, retired_at) ON switchboard.ehr_endpoints TO switchboard_operator;

-- +goose Down
ALTER TABLE switchboard.fhir_links DROP COLUMN owned_hashes;
ALTER TABLE switchboard.ehr_endpoints DROP COLUMN legacy_identifier_system, DROP COLUMN write_plan, DROP COLUMN retired_at;
DROP TABLE switchboard.deployment;

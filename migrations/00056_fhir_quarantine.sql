-- A pulled value Switchboard refuses (outside the plausible range of its
-- kind, a unit not allowed) is kept as 'quarantined' with the reason, and
-- announced as ehr.data_rejected, never silently marked applied (issue 13).

-- +goose Up
ALTER TABLE switchboard.fhir_inbound DROP CONSTRAINT fhir_inbound_state_check;
ALTER TABLE switchboard.fhir_inbound ADD CONSTRAINT fhir_inbound_state_check
    CHECK (state IN ('applied', 'unmatched', 'echo', 'ignored', 'quarantined'));

-- +goose Down
UPDATE switchboard.fhir_inbound SET state = 'ignored' WHERE state = 'quarantined';
ALTER TABLE switchboard.fhir_inbound DROP CONSTRAINT fhir_inbound_state_check;
ALTER TABLE switchboard.fhir_inbound ADD CONSTRAINT fhir_inbound_state_check
    CHECK (state IN ('applied', 'unmatched', 'echo', 'ignored'));

-- FHIR validation at push_fhir call time (issue 13): what SQL can decide
-- about an app-built resource is refused when push_fhir is called, with
-- SQLSTATE 22023 naming the element; everything else (the official R4 JSON
-- schema, every required binding, profiles, conditional references) is
-- checked by the push worker before anything is sent, and a resource that
-- fails becomes a permanent dead letter naming the resource and the rule.
--
-- fhir_resource_types: the concrete R4 resource types and the codes of the
-- required value set bound to <type>.status (NULL: no status element or no
-- required binding on it). Generated from the R4 definitions the worker
-- embeds (`go run ./internal/fhir/r4spec/gen -sql`); a Go test keeps it
-- equal to them.

-- +goose Up
CREATE TABLE switchboard.fhir_resource_types (
    resource_type text PRIMARY KEY,
    status_codes  text[]
);

INSERT INTO switchboard.fhir_resource_types (resource_type, status_codes) VALUES
    ('Account', ARRAY['active', 'entered-in-error', 'inactive', 'on-hold', 'unknown']),
    ('ActivityDefinition', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('AdverseEvent', NULL),
    ('AllergyIntolerance', NULL),
    ('Appointment', ARRAY['arrived', 'booked', 'cancelled', 'checked-in', 'entered-in-error', 'fulfilled', 'noshow', 'pending', 'proposed', 'waitlist']),
    ('AppointmentResponse', NULL),
    ('AuditEvent', NULL),
    ('Basic', NULL),
    ('Binary', NULL),
    ('BiologicallyDerivedProduct', ARRAY['available', 'unavailable']),
    ('BodyStructure', NULL),
    ('Bundle', NULL),
    ('CapabilityStatement', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('CarePlan', ARRAY['active', 'completed', 'draft', 'entered-in-error', 'on-hold', 'revoked', 'unknown']),
    ('CareTeam', ARRAY['active', 'entered-in-error', 'inactive', 'proposed', 'suspended']),
    ('CatalogEntry', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('ChargeItem', ARRAY['aborted', 'billable', 'billed', 'entered-in-error', 'not-billable', 'planned', 'unknown']),
    ('ChargeItemDefinition', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('Claim', ARRAY['active', 'cancelled', 'draft', 'entered-in-error']),
    ('ClaimResponse', ARRAY['active', 'cancelled', 'draft', 'entered-in-error']),
    ('ClinicalImpression', ARRAY['completed', 'entered-in-error', 'in-progress']),
    ('CodeSystem', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('Communication', ARRAY['completed', 'entered-in-error', 'in-progress', 'not-done', 'on-hold', 'preparation', 'stopped', 'unknown']),
    ('CommunicationRequest', ARRAY['active', 'completed', 'draft', 'entered-in-error', 'on-hold', 'revoked', 'unknown']),
    ('CompartmentDefinition', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('Composition', ARRAY['amended', 'entered-in-error', 'final', 'preliminary']),
    ('ConceptMap', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('Condition', NULL),
    ('Consent', ARRAY['active', 'draft', 'entered-in-error', 'inactive', 'proposed', 'rejected']),
    ('Contract', ARRAY['amended', 'appended', 'cancelled', 'disputed', 'entered-in-error', 'executable', 'executed', 'negotiable', 'offered', 'policy', 'rejected', 'renewed', 'resolved', 'revoked', 'terminated']),
    ('Coverage', ARRAY['active', 'cancelled', 'draft', 'entered-in-error']),
    ('CoverageEligibilityRequest', ARRAY['active', 'cancelled', 'draft', 'entered-in-error']),
    ('CoverageEligibilityResponse', ARRAY['active', 'cancelled', 'draft', 'entered-in-error']),
    ('DetectedIssue', ARRAY['mitigated', 'entered-in-error', 'final', 'preliminary']),
    ('Device', ARRAY['active', 'entered-in-error', 'inactive', 'unknown']),
    ('DeviceDefinition', NULL),
    ('DeviceMetric', NULL),
    ('DeviceRequest', ARRAY['active', 'completed', 'draft', 'entered-in-error', 'on-hold', 'revoked', 'unknown']),
    ('DeviceUseStatement', ARRAY['active', 'completed', 'entered-in-error', 'intended', 'on-hold', 'stopped']),
    ('DiagnosticReport', ARRAY['amended', 'appended', 'cancelled', 'corrected', 'entered-in-error', 'final', 'partial', 'preliminary', 'registered', 'unknown']),
    ('DocumentManifest', ARRAY['current', 'entered-in-error', 'superseded']),
    ('DocumentReference', ARRAY['current', 'entered-in-error', 'superseded']),
    ('EffectEvidenceSynthesis', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('Encounter', ARRAY['arrived', 'cancelled', 'entered-in-error', 'finished', 'in-progress', 'onleave', 'planned', 'triaged', 'unknown']),
    ('Endpoint', ARRAY['active', 'entered-in-error', 'error', 'off', 'suspended', 'test']),
    ('EnrollmentRequest', ARRAY['active', 'cancelled', 'draft', 'entered-in-error']),
    ('EnrollmentResponse', ARRAY['active', 'cancelled', 'draft', 'entered-in-error']),
    ('EpisodeOfCare', ARRAY['active', 'cancelled', 'entered-in-error', 'finished', 'onhold', 'planned', 'waitlist']),
    ('EventDefinition', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('Evidence', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('EvidenceVariable', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('ExampleScenario', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('ExplanationOfBenefit', ARRAY['active', 'cancelled', 'draft', 'entered-in-error']),
    ('FamilyMemberHistory', ARRAY['completed', 'entered-in-error', 'health-unknown', 'partial']),
    ('Flag', ARRAY['active', 'entered-in-error', 'inactive']),
    ('Goal', NULL),
    ('GraphDefinition', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('Group', NULL),
    ('GuidanceResponse', ARRAY['data-requested', 'data-required', 'entered-in-error', 'failure', 'in-progress', 'success']),
    ('HealthcareService', NULL),
    ('ImagingStudy', ARRAY['available', 'cancelled', 'entered-in-error', 'registered', 'unknown']),
    ('Immunization', ARRAY['completed', 'entered-in-error', 'not-done']),
    ('ImmunizationEvaluation', ARRAY['completed', 'entered-in-error']),
    ('ImmunizationRecommendation', NULL),
    ('ImplementationGuide', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('InsurancePlan', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('Invoice', ARRAY['balanced', 'cancelled', 'draft', 'entered-in-error', 'issued']),
    ('Library', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('Linkage', NULL),
    ('List', ARRAY['current', 'entered-in-error', 'retired']),
    ('Location', ARRAY['active', 'inactive', 'suspended']),
    ('Measure', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('MeasureReport', ARRAY['complete', 'error', 'pending']),
    ('Media', ARRAY['completed', 'entered-in-error', 'in-progress', 'not-done', 'on-hold', 'preparation', 'stopped', 'unknown']),
    ('Medication', ARRAY['active', 'entered-in-error', 'inactive']),
    ('MedicationAdministration', ARRAY['completed', 'entered-in-error', 'in-progress', 'not-done', 'on-hold', 'stopped', 'unknown']),
    ('MedicationDispense', ARRAY['cancelled', 'completed', 'declined', 'entered-in-error', 'in-progress', 'on-hold', 'preparation', 'stopped', 'unknown']),
    ('MedicationKnowledge', ARRAY['active', 'entered-in-error', 'inactive']),
    ('MedicationRequest', ARRAY['active', 'cancelled', 'completed', 'draft', 'entered-in-error', 'on-hold', 'stopped', 'unknown']),
    ('MedicationStatement', ARRAY['active', 'completed', 'entered-in-error', 'intended', 'not-taken', 'on-hold', 'stopped', 'unknown']),
    ('MedicinalProduct', NULL),
    ('MedicinalProductAuthorization', NULL),
    ('MedicinalProductContraindication', NULL),
    ('MedicinalProductIndication', NULL),
    ('MedicinalProductIngredient', NULL),
    ('MedicinalProductInteraction', NULL),
    ('MedicinalProductManufactured', NULL),
    ('MedicinalProductPackaged', NULL),
    ('MedicinalProductPharmaceutical', NULL),
    ('MedicinalProductUndesirableEffect', NULL),
    ('MessageDefinition', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('MessageHeader', NULL),
    ('MolecularSequence', NULL),
    ('NamingSystem', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('NutritionOrder', ARRAY['active', 'completed', 'draft', 'entered-in-error', 'on-hold', 'revoked', 'unknown']),
    ('Observation', ARRAY['amended', 'cancelled', 'corrected', 'entered-in-error', 'final', 'preliminary', 'registered', 'unknown']),
    ('ObservationDefinition', NULL),
    ('OperationDefinition', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('OperationOutcome', NULL),
    ('Organization', NULL),
    ('OrganizationAffiliation', NULL),
    ('Parameters', NULL),
    ('Patient', NULL),
    ('PaymentNotice', ARRAY['active', 'cancelled', 'draft', 'entered-in-error']),
    ('PaymentReconciliation', ARRAY['active', 'cancelled', 'draft', 'entered-in-error']),
    ('Person', NULL),
    ('PlanDefinition', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('Practitioner', NULL),
    ('PractitionerRole', NULL),
    ('Procedure', ARRAY['completed', 'entered-in-error', 'in-progress', 'not-done', 'on-hold', 'preparation', 'stopped', 'unknown']),
    ('Provenance', NULL),
    ('Questionnaire', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('QuestionnaireResponse', ARRAY['amended', 'completed', 'entered-in-error', 'in-progress', 'stopped']),
    ('RelatedPerson', NULL),
    ('RequestGroup', ARRAY['active', 'completed', 'draft', 'entered-in-error', 'on-hold', 'revoked', 'unknown']),
    ('ResearchDefinition', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('ResearchElementDefinition', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('ResearchStudy', ARRAY['active', 'administratively-completed', 'approved', 'closed-to-accrual', 'closed-to-accrual-and-intervention', 'completed', 'disapproved', 'in-review', 'temporarily-closed-to-accrual', 'temporarily-closed-to-accrual-and-intervention', 'withdrawn']),
    ('ResearchSubject', ARRAY['candidate', 'eligible', 'follow-up', 'ineligible', 'not-registered', 'off-study', 'on-study', 'on-study-intervention', 'on-study-observation', 'pending-on-study', 'potential-candidate', 'screening', 'withdrawn']),
    ('RiskAssessment', ARRAY['amended', 'cancelled', 'corrected', 'entered-in-error', 'final', 'preliminary', 'registered', 'unknown']),
    ('RiskEvidenceSynthesis', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('Schedule', NULL),
    ('SearchParameter', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('ServiceRequest', ARRAY['active', 'completed', 'draft', 'entered-in-error', 'on-hold', 'revoked', 'unknown']),
    ('Slot', ARRAY['busy', 'busy-tentative', 'busy-unavailable', 'entered-in-error', 'free']),
    ('Specimen', ARRAY['available', 'entered-in-error', 'unavailable', 'unsatisfactory']),
    ('SpecimenDefinition', NULL),
    ('StructureDefinition', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('StructureMap', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('Subscription', ARRAY['active', 'error', 'off', 'requested']),
    ('Substance', ARRAY['active', 'entered-in-error', 'inactive']),
    ('SubstanceNucleicAcid', NULL),
    ('SubstancePolymer', NULL),
    ('SubstanceProtein', NULL),
    ('SubstanceReferenceInformation', NULL),
    ('SubstanceSourceMaterial', NULL),
    ('SubstanceSpecification', NULL),
    ('SupplyDelivery', ARRAY['abandoned', 'completed', 'entered-in-error', 'in-progress']),
    ('SupplyRequest', ARRAY['active', 'cancelled', 'completed', 'draft', 'entered-in-error', 'suspended', 'unknown']),
    ('Task', ARRAY['accepted', 'cancelled', 'completed', 'draft', 'entered-in-error', 'failed', 'in-progress', 'on-hold', 'ready', 'received', 'rejected', 'requested']),
    ('TerminologyCapabilities', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('TestReport', ARRAY['completed', 'entered-in-error', 'in-progress', 'stopped', 'waiting']),
    ('TestScript', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('ValueSet', ARRAY['active', 'draft', 'retired', 'unknown']),
    ('VerificationResult', ARRAY['attested', 'in-process', 'req-revalid', 'reval-fail', 'val-fail', 'validated']),
    ('VisionPrescription', ARRAY['active', 'cancelled', 'draft', 'entered-in-error']);

-- fhir_uuid_reference returns the element path of the first reference in a
-- resource that is a urn:uuid (a reference to an entry of a transaction),
-- or NULL.
-- +goose StatementBegin
CREATE FUNCTION switchboard.fhir_uuid_reference(v jsonb, path text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    k text;
    e jsonb;
    r text;
BEGIN
    IF jsonb_typeof(v) = 'object' THEN
        FOR k, e IN SELECT * FROM jsonb_each(v) LOOP
            IF k = 'reference' AND jsonb_typeof(e) = 'string' AND (e #>> '{}') LIKE 'urn:uuid:%' THEN
                RETURN path || '.reference';
            END IF;
            r := switchboard.fhir_uuid_reference(e, path || '.' || k);
            IF r IS NOT NULL THEN
                RETURN r;
            END IF;
        END LOOP;
    ELSIF jsonb_typeof(v) = 'array' THEN
        FOR i IN 0 .. jsonb_array_length(v) - 1 LOOP
            r := switchboard.fhir_uuid_reference(v -> i, path || '[' || i || ']');
            IF r IS NOT NULL THEN
                RETURN r;
            END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- push_fhir as in 00020, and refusing: a resourceType that is not an R4
-- resource type, a status outside the required value set of <type>.status,
-- and a urn:uuid reference (push_fhir sends each resource on its own, so a
-- urn:uuid can name no entry of a transaction: refer to a resource on the
-- EHR as Type/id, or by a conditional reference Type?identifier=system|value
-- that the worker resolves by a search before sending).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION switchboard.push_fhir(resource jsonb, endpoint_name text DEFAULT NULL, idempotency_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = switchboard, pg_temp
AS $$
DECLARE
    v_type     text;
    v_rt       switchboard.fhir_resource_types;
    v_ref      text;
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
    SELECT * INTO v_rt FROM switchboard.fhir_resource_types t WHERE t.resource_type = v_type;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'resource.resourceType % is not a FHIR R4 resource type', v_type USING ERRCODE = '22023';
    END IF;
    IF resource ? 'id' THEN
        RAISE EXCEPTION 'resource.id must be absent: Switchboard creates or updates through its business identifier'
            USING ERRCODE = '22023';
    END IF;
    IF v_rt.status_codes IS NOT NULL AND resource ? 'status' AND (jsonb_typeof(resource -> 'status') <> 'string'
        OR NOT (resource ->> 'status') = ANY (v_rt.status_codes)) THEN
        RAISE EXCEPTION '%.status is not in its required value set (one of %)', v_type, array_to_string(v_rt.status_codes, ', ')
            USING ERRCODE = '22023';
    END IF;
    IF jsonb_path_exists(resource, 'strict $.**.reference ? (@ like_regex "^urn:uuid:")') THEN
        v_ref := switchboard.fhir_uuid_reference(resource, v_type);
        RAISE EXCEPTION '% is a urn:uuid reference, which only a transaction can resolve: refer to Type/id or Type?identifier=system|value',
            v_ref USING ERRCODE = '22023';
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

REVOKE ALL ON FUNCTION switchboard.fhir_uuid_reference(jsonb, text) FROM PUBLIC;
GRANT SELECT ON switchboard.fhir_resource_types TO switchboard_worker, switchboard_operator, switchboard_app;

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION switchboard.push_fhir(resource jsonb, endpoint_name text DEFAULT NULL, idempotency_key text DEFAULT NULL)
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
DROP FUNCTION switchboard.fhir_uuid_reference(jsonb, text);
DROP TABLE switchboard.fhir_resource_types;

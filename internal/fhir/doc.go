// Package fhir is Switchboard's HL7 FHIR R4 integration: EHR endpoints as
// data, mappers from the domain tables to FHIR resources, validation before
// anything is sent, an idempotent version-aware push (fhir_push), an
// incremental pull (fhir_pull) and the rest-hook notifications that trigger
// it.
//
// # Push
//
// Every write is a conditional create (If-None-Exist on Switchboard's
// business identifier) for an entity not yet linked, or a version-aware
// update (If-Match with the last ETag) of the linked resource. Both are
// idempotent, so they may be retried after a timeout. The link
// (switchboard.fhir_links) keeps the remote id, version and the hash of what
// was pushed: an unchanged entity is not sent again. A patient is pushed
// before anything that refers to it. Outcomes are classified once, in
// Classify.
//
// # Ownership
//
// An update never erases what the EHR added: Switchboard owns the elements
// listed in Owned (Patient: its identifier, active, the official name, the
// mobile phone, gender, birthDate; Observation: its identifier, status,
// category, code, subject, effective[x], value[x], interpretation,
// component, device; …) and writes only those it changed since its last
// write, merged into the server's current resource (read, Merge, PUT with
// If-Match or JSON Patch per the endpoint's WritePlan, re-merge on 412).
// Identifiers use the deployment's own system (DeploymentSystem) and a
// conditional create's match must carry it exactly.
//
// # Pull
//
// A _lastUpdated search from the stored cursor minus an overlap window,
// deduplicated on (type, id, versionId), skipping Switchboard's own writes
// (meta.tag) and following next links on the endpoint's origin only.
// Resources are matched to local patients by business identifier only.
//
// # Mapping
//
// Observation kinds (code, display, category, units) come from
// switchboard.observation_kinds through internal/obskind, read on first
// use; FHIR's additions are keyed by LOINC code (vitalProfiles,
// alternateCodes).
//
// Patient (US Core 5.0.1), Observation (core vital-signs profiles; steps and
// sleep after the Physical Activity IG; a blood pressure reading — the
// systolic and diastolic observations paired by source id
// "<reading>#8480-6" / "<reading>#8462-4", or for wearable samples (Apple
// Health UUIDs) by patient, source, device and identical effective times
// when that pairing is unique — as one 85354-9 panel, see bloodpressure.go
// and MapBloodPressure; the halves' pushes run one at a time per reading),
// Device, Communication (a sent SMS,
// body only when the endpoint opts in) and Consent (SMS opt-in/out).
// golang-fhir-models builds Patient, Observation and Device; Communication
// and Consent use own types because that library mishandles required choice
// types.
package fhir

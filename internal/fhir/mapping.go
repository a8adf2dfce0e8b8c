package fhir

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/obskind"
)

// Code systems and profiles the mappers use.
const (
	SystemLOINC               = "http://loinc.org"
	SystemUCUM                = "http://unitsofmeasure.org"
	SystemObservationCategory = "http://terminology.hl7.org/CodeSystem/observation-category"
	SystemInterpretation      = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
	SystemDataAbsentReason    = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
	SystemCommCategory        = "http://terminology.hl7.org/CodeSystem/communication-category"
	SystemParticipationMode   = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
	SystemConsentScope        = "http://terminology.hl7.org/CodeSystem/consentscope"
	SystemActCode             = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	SystemDeviceType          = "http://snomed.info/sct"

	ExtDataAbsentReason = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"

	ProfileUSCorePatient = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"
	ProfileVitalSigns    = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
	ProfileBloodPressure = "http://hl7.org/fhir/StructureDefinition/bp"

	// LOINC codes of the blood pressure panel and its components.
	LOINCBloodPressurePanel = "85354-9"
	LOINCSystolic           = "8480-6"
	LOINCDiastolic          = "8462-4"
)

// Observation kinds — their LOINC codes, displays, categories and units —
// come from switchboard.observation_kinds (internal/obskind). What FHIR
// adds is keyed by the LOINC code: the core vital-signs profile of the code
// (vitalProfiles, in validate.go) and the other codes that profile allows.

// alternateCodes are codings a vital-signs profile allows besides the
// kind's LOINC code: sent as translations, read on pull.
var alternateCodes = map[string][]models.Coding{
	"2708-6": {{System: ptr(SystemLOINC), Code: ptr("59408-5"), Display: ptr("Oxygen saturation in Arterial blood by Pulse oximetry")}},
}

// ProfileOf is the core profile an observation of kind k claims: the
// vital-signs profile of its LOINC code, the generic vital-signs profile
// for another vital sign, none for activity (steps and sleep follow the
// Physical Activity IG's conventions and claim no profile).
func ProfileOf(k obskind.Kind) string {
	if k.Category != "vital-signs" {
		return ""
	}
	for url, vp := range vitalProfiles {
		if vp.code == k.LOINC && url != ProfileBloodPressure {
			return url
		}
	}
	return ProfileVitalSigns
}

// kindOfCode is the kind a pulled LOINC code maps to: a kind's code or one
// of the alternatives its profile allows.
func kindOfCode(kinds *obskind.Catalog, code string) (obskind.Kind, bool) {
	if k, ok := kinds.ByLOINC(code); ok {
		return k, true
	}
	for main, alts := range alternateCodes {
		for _, a := range alts {
			if *a.Code == code {
				return kinds.ByLOINC(main)
			}
		}
	}
	return obskind.Kind{}, false
}

// unitDisplay is the human unit shown next to a UCUM code.
var unitDisplay = map[string]string{
	"/d": "steps per day", "{steps}": "steps", "{steps}/d": "steps per day", "/min": "/min", "%": "%",
	"kg": "kg", "g": "g", "[lb_av]": "lb", "cm": "cm", "[in_i]": "in", "Cel": "Cel", "[degF]": "degF",
	"min": "min", "h": "h", "s": "s", "mm[Hg]": "mmHg",
}

// MapOptions are what every mapper needs besides the row.
type MapOptions struct {
	// IdentifierSystem is the system of Switchboard's business identifiers.
	IdentifierSystem string
	// Tag marks Switchboard's own writes so a pull skips their echoes.
	Tag Coding
	// PatientRef is the reference to the patient on the endpoint
	// ("Patient/123", or a urn:uuid: inside a transaction).
	PatientRef string
	// DeviceRef is the reference to the observation's device, if any.
	DeviceRef string
	// IncludeSMSBody puts the message body in a Communication (opt-in per endpoint).
	IncludeSMSBody bool
}

// Coding is a system and code.
type Coding struct {
	System string `json:"system,omitempty"`
	Code   string `json:"code,omitempty"`
}

// ParseCoding reads "system|code".
func ParseCoding(s string) (Coding, error) {
	sys, code, ok := strings.Cut(s, "|")
	if !ok || sys == "" || code == "" {
		return Coding{}, fmt.Errorf("want system|code")
	}
	return Coding{System: sys, Code: code}, nil
}

// Identifier values of local entities: stable, and free of PHI.
func identifierValue(entity string, id int64) string { return fmt.Sprintf("%s-%d", entity, id) }

// PatientIdentifierValue is the business identifier value of a patient:
// the app's external reference (a "|" in it percent-encoded, see
// identifierValueOf).
func PatientIdentifierValue(p db.Patient) string { return identifierValueOf(p.ExternalRef) }

func ptr[T any](v T) *T { return &v }

func (o MapOptions) meta(profile string) *models.Meta {
	m := &models.Meta{Tag: []models.Coding{{System: ptr(o.Tag.System), Code: ptr(o.Tag.Code)}}}
	if profile != "" {
		m.Profile = []string{profile}
	}
	return m
}

func (o MapOptions) identifier(value string) []models.Identifier {
	return []models.Identifier{{Use: ptr(models.IdentifierUseUsual), System: ptr(o.IdentifierSystem), Value: ptr(value)}}
}

// MapPatient builds a US Core 5.0.1 Patient. A patient without any name
// gets a name and a Patient extension data-absent-reason (US Core requires a
// name, and us-core-6 a family or given name or that extension);
// without a gender, gender "unknown" (US Core requires one).
func MapPatient(p db.Patient, o MapOptions) ([]byte, error) {
	r := models.Patient{
		Meta:       o.meta(ProfileUSCorePatient),
		Identifier: o.identifier(PatientIdentifierValue(p)),
		Active:     ptr(true),
	}
	name := models.HumanName{Use: ptr(models.NameUseOfficial)}
	if p.FamilyName != nil {
		name.Family = p.FamilyName
	}
	if p.GivenName != nil {
		name.Given = []string{*p.GivenName}
	}
	if name.Family == nil && name.Given == nil {
		// US Core 5.0.1 (us-core-6, evaluated on Patient): no family or
		// given name, then a data-absent-reason extension.
		dar := []models.Extension{{Url: ExtDataAbsentReason, ValueCode: ptr("unknown")}}
		name = models.HumanName{Extension: dar}
		r.Extension = dar
	}
	r.Name = []models.HumanName{name}
	gender := models.AdministrativeGenderUnknown
	if p.Gender != nil {
		switch *p.Gender {
		case "male":
			gender = models.AdministrativeGenderMale
		case "female":
			gender = models.AdministrativeGenderFemale
		case "other":
			gender = models.AdministrativeGenderOther
		}
	}
	r.Gender = &gender
	if p.BirthDate.Valid {
		r.BirthDate = ptr(p.BirthDate.Time.Format(time.DateOnly))
	}
	if p.PhoneE164 != nil {
		r.Telecom = []models.ContactPoint{{System: ptr(models.ContactPointSystemPhone), Value: p.PhoneE164, Use: ptr(models.ContactPointUseMobile)}}
	}
	return json.Marshal(r)
}

// numberOf renders a numeric as a JSON number, keeping its precision.
func numberOf(n pgtype.Numeric) (json.Number, error) {
	b, err := n.MarshalJSON()
	if err != nil || !n.Valid || string(b) == "null" {
		return "", fmt.Errorf("value is not a number")
	}
	return json.Number(b), nil
}

// instant renders t in the observation's original UTC offset when known.
func instant(t time.Time, offsetSeconds *int32) string {
	if offsetSeconds != nil {
		t = t.In(time.FixedZone("", int(*offsetSeconds)))
	} else {
		t = t.UTC()
	}
	return t.Format(time.RFC3339Nano)
}

// MapObservation builds an Observation: a core vital-signs profile for
// vitals, Physical Activity IG conventions for steps and sleep. The subject
// (o.PatientRef) is required; the device reference is optional. A blood
// pressure reading goes out as one panel: MapBloodPressure.
func MapObservation(obs db.Observation, kinds *obskind.Catalog, o MapOptions) ([]byte, error) {
	k, ok := kinds.Kind(obs.Kind)
	if !ok {
		return nil, fmt.Errorf("observation kind %s is not in switchboard.observation_kinds", obs.Kind)
	}
	q, err := quantityOf(obs)
	if err != nil {
		return nil, err
	}
	r := observation(obs, o, ProfileOf(k), k.Category,
		models.CodeableConcept{Coding: append([]models.Coding{{System: ptr(SystemLOINC), Code: ptr(k.LOINC), Display: ptr(k.Display)}},
			alternateCodes[k.LOINC]...), Text: ptr(k.Display)})
	r.ValueQuantity = q
	if k.Category == "activity" {
		r.Performer = []models.Reference{{Reference: ptr(o.PatientRef)}}
	}
	if obs.Interpretation != nil {
		r.Interpretation = interpretation(*obs.Interpretation)
	}
	return json.Marshal(r)
}

// MapBloodPressure builds one blood pressure reading as the core bp
// profile wants it: an 85354-9 panel Observation with a systolic (8480-6)
// and a diastolic (8462-4) component in mm[Hg], each with its own
// interpretation. It carries the systolic observation's identifier, time,
// device and status (entered-in-error when either half is).
func MapBloodPressure(sys, dia db.Observation, kinds *obskind.Catalog, o MapOptions) ([]byte, error) {
	return mapBloodPressure(sys.ID, sys, dia, kinds, o)
}

// mapBloodPressure is MapBloodPressure carrying the identifier of
// observation anchor (either half: see panelAnchor).
func mapBloodPressure(anchor int64, sys, dia db.Observation, kinds *obskind.Catalog, o MapOptions) ([]byte, error) {
	if sys.Kind != "blood_pressure_systolic" || dia.Kind != "blood_pressure_diastolic" {
		return nil, fmt.Errorf("a blood pressure reading needs a systolic and a diastolic observation")
	}
	if !sys.EffectiveStart.Equal(dia.EffectiveStart) || !equalTimes(sys.EffectiveEnd, dia.EffectiveEnd) {
		return nil, fmt.Errorf("the systolic and diastolic observations of a blood pressure reading differ in effective time")
	}
	r := observation(sys, o, ProfileBloodPressure, "vital-signs", models.CodeableConcept{Coding: []models.Coding{{
		System: ptr(SystemLOINC), Code: ptr(LOINCBloodPressurePanel), Display: ptr("Blood pressure panel with all children optional")}},
		Text: ptr("Blood pressure")})
	r.Identifier = o.identifier(identifierValue("observation", anchor))
	if dia.Status == "entered-in-error" {
		r.Status = models.ObservationStatusEnteredInError
	}
	for _, c := range []db.Observation{sys, dia} {
		k, ok := kinds.Kind(c.Kind)
		if !ok {
			return nil, fmt.Errorf("observation kind %s is not in switchboard.observation_kinds", c.Kind)
		}
		q, err := quantityOf(c)
		if err != nil {
			return nil, err
		}
		comp := models.ObservationComponent{Code: models.CodeableConcept{Coding: []models.Coding{{
			System: ptr(SystemLOINC), Code: ptr(k.LOINC), Display: ptr(k.Display)}}, Text: ptr(k.Display)}, ValueQuantity: q}
		if c.Interpretation != nil {
			comp.Interpretation = interpretation(*c.Interpretation)
		}
		r.Component = append(r.Component, comp)
	}
	return json.Marshal(r)
}

func equalTimes(a, b *time.Time) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && a.Equal(*b))
}

// observation is what every mapped Observation has: meta, identifier,
// status, category, code, subject, effective time (in the original UTC
// offset) and device.
func observation(obs db.Observation, o MapOptions, profile, category string, code models.CodeableConcept) models.Observation {
	status := models.ObservationStatusFinal
	switch obs.Status {
	case "amended":
		status = models.ObservationStatusAmended
	case "entered-in-error":
		status = models.ObservationStatusEnteredInError
	}
	categoryDisplay := map[string]string{"vital-signs": "Vital Signs", "activity": "Activity"}[category]
	r := models.Observation{
		Meta:       o.meta(profile),
		Identifier: o.identifier(identifierValue("observation", obs.ID)),
		Status:     status,
		Category: []models.CodeableConcept{{Coding: []models.Coding{{
			System: ptr(SystemObservationCategory), Code: ptr(category), Display: ptr(categoryDisplay)}}}},
		Code:    code,
		Subject: &models.Reference{Reference: ptr(o.PatientRef)},
	}
	if obs.EffectiveEnd != nil && !obs.EffectiveEnd.Equal(obs.EffectiveStart) {
		r.EffectivePeriod = &models.Period{Start: ptr(instant(obs.EffectiveStart, obs.UtcOffsetSeconds)),
			End: ptr(instant(*obs.EffectiveEnd, obs.UtcOffsetSeconds))}
	} else {
		r.EffectiveDateTime = ptr(instant(obs.EffectiveStart, obs.UtcOffsetSeconds))
	}
	if o.DeviceRef != "" {
		r.Device = &models.Reference{Reference: ptr(o.DeviceRef)}
	}
	return r
}

// quantityOf is the observation's value as a UCUM Quantity.
func quantityOf(obs db.Observation) (*models.Quantity, error) {
	value, err := numberOf(obs.Value)
	if err != nil {
		return nil, err
	}
	unit := unitDisplay[obs.Unit]
	if unit == "" {
		unit = obs.Unit
	}
	return &models.Quantity{Value: &value, Unit: ptr(unit), System: ptr(SystemUCUM), Code: ptr(obs.Unit)}, nil
}

func interpretation(code string) []models.CodeableConcept {
	return []models.CodeableConcept{{Coding: []models.Coding{{System: ptr(SystemInterpretation), Code: ptr(code)}}}}
}

// MapDevice builds a Device for a patient's wearable.
func MapDevice(d db.Device, o MapOptions) ([]byte, error) {
	r := models.Device{
		Meta:       o.meta(""),
		Identifier: o.identifier(identifierValue("device", d.ID)),
		Status:     ptr(models.FHIRDeviceStatusActive),
		Patient:    &models.Reference{Reference: ptr(o.PatientRef)},
		Type: &models.CodeableConcept{Coding: []models.Coding{{System: ptr(SystemDeviceType), Code: ptr("706689003"),
			Display: ptr("Wearable device")}}, Text: ptr("Wearable device")},
	}
	if d.Manufacturer != nil {
		r.Manufacturer = d.Manufacturer
	}
	if d.Model != nil {
		r.ModelNumber = d.Model
	}
	if d.DisplayName != nil {
		r.DeviceName = []models.DeviceDeviceName{{Name: *d.DisplayName, Type: models.DeviceNameTypeUserFriendlyName}}
	}
	return json.Marshal(r)
}

// The Communication and Consent are built with our own types:
// golang-fhir-models marshals required choice types (payload.content[x])
// with empty siblings, which no server accepts.

type jsonCoding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

type jsonConcept struct {
	Coding []jsonCoding `json:"coding,omitempty"`
	Text   string       `json:"text,omitempty"`
}

type jsonReference struct {
	Reference string `json:"reference"`
}

type jsonIdentifier struct {
	Use    string `json:"use,omitempty"`
	System string `json:"system"`
	Value  string `json:"value"`
}

type jsonMeta struct {
	Profile []string     `json:"profile,omitempty"`
	Tag     []jsonCoding `json:"tag,omitempty"`
}

type communication struct {
	ResourceType string           `json:"resourceType"`
	Meta         jsonMeta         `json:"meta"`
	Identifier   []jsonIdentifier `json:"identifier"`
	Status       string           `json:"status"`
	StatusReason *jsonConcept     `json:"statusReason,omitempty"`
	Category     []jsonConcept    `json:"category"`
	Medium       []jsonConcept    `json:"medium"`
	Subject      jsonReference    `json:"subject"`
	Recipient    []jsonReference  `json:"recipient"`
	Sent         string           `json:"sent,omitempty"`
	Received     string           `json:"received,omitempty"`
	Payload      []commPayload    `json:"payload,omitempty"`
}

type commPayload struct {
	ContentString string `json:"contentString"`
}

func (o MapOptions) jsonMeta(profile string) jsonMeta {
	m := jsonMeta{Tag: []jsonCoding{{System: o.Tag.System, Code: o.Tag.Code}}}
	if profile != "" {
		m.Profile = []string{profile}
	}
	return m
}

// MapCommunication builds the Communication of one sent SMS: its status and
// times, never its body unless o.IncludeSMSBody (and the body has not been
// erased). Only messages that reached a provider or failed are mapped.
func MapCommunication(m db.Message, o MapOptions) ([]byte, error) {
	r := communication{
		ResourceType: "Communication",
		Meta:         o.jsonMeta(""),
		Identifier:   []jsonIdentifier{{Use: "usual", System: o.IdentifierSystem, Value: identifierValue("message", m.ID)}},
		Category:     []jsonConcept{{Coding: []jsonCoding{{System: SystemCommCategory, Code: "notification", Display: "Notification"}}}},
		Medium:       []jsonConcept{{Coding: []jsonCoding{{System: SystemParticipationMode, Code: "WRITTEN", Display: "written"}}, Text: "SMS"}},
		Subject:      jsonReference{Reference: o.PatientRef},
		Recipient:    []jsonReference{{Reference: o.PatientRef}},
	}
	sent := m.AcceptedAt
	switch m.Status {
	case "sending", "sent":
		r.Status = "in-progress"
	case "delivered":
		r.Status = "completed"
		if m.FinalAt != nil {
			r.Received = m.FinalAt.UTC().Format(time.RFC3339Nano)
		}
	case "undelivered":
		r.Status = "stopped"
	case "failed", "expired", "blocked_opted_out", "cancelled":
		r.Status = "not-done"
		sent = nil
	default:
		return nil, fmt.Errorf("message status %s is not mapped to a Communication", m.Status)
	}
	if sent != nil {
		r.Sent = sent.UTC().Format(time.RFC3339Nano)
	}
	if m.ErrorCode != nil && (r.Status == "stopped" || r.Status == "not-done") {
		// Provider error codes (numbers, reason names) carry no PHI.
		r.StatusReason = &jsonConcept{Coding: []jsonCoding{{System: o.IdentifierSystem + "/sms-error", Code: *m.ErrorCode}}}
	}
	if o.IncludeSMSBody && m.Body != nil && m.BodyErasedAt == nil {
		r.Payload = []commPayload{{ContentString: *m.Body}}
	}
	return json.Marshal(r)
}

type consent struct {
	ResourceType string           `json:"resourceType"`
	Meta         jsonMeta         `json:"meta"`
	Identifier   []jsonIdentifier `json:"identifier"`
	Status       string           `json:"status"`
	Scope        jsonConcept      `json:"scope"`
	Category     []jsonConcept    `json:"category"`
	Patient      jsonReference    `json:"patient"`
	DateTime     string           `json:"dateTime"`
	PolicyRule   jsonConcept      `json:"policyRule"`
	Provision    consentProvision `json:"provision"`
}

type consentProvision struct {
	Type   string        `json:"type"`
	Period *jsonPeriod   `json:"period,omitempty"`
	Action []jsonConcept `json:"action,omitempty"`
}

type jsonPeriod struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

// MapConsent builds the Consent recording a patient's SMS opt-in or
// opt-out (the consent of the patient's phone number).
func MapConsent(patientID int64, c db.SMSConsent, o MapOptions) ([]byte, error) {
	rule, kind, text := "OPTIN", "permit", "SMS opt-in"
	if c.OptedOut {
		rule, kind, text = "OPTOUT", "deny", "SMS opt-out"
	}
	at := c.UpdatedAt.UTC().Format(time.RFC3339Nano)
	r := consent{
		ResourceType: "Consent",
		Meta:         o.jsonMeta(""),
		Identifier:   []jsonIdentifier{{Use: "usual", System: o.IdentifierSystem, Value: identifierValue("sms-consent", patientID)}},
		Status:       "active",
		Scope:        jsonConcept{Coding: []jsonCoding{{System: SystemConsentScope, Code: "patient-privacy", Display: "Privacy Consent"}}},
		Category:     []jsonConcept{{Coding: []jsonCoding{{System: SystemLOINC, Code: "59284-0", Display: "Patient Consent"}}, Text: text}},
		Patient:      jsonReference{Reference: o.PatientRef},
		DateTime:     at,
		PolicyRule:   jsonConcept{Coding: []jsonCoding{{System: SystemActCode, Code: rule}}},
		Provision: consentProvision{Type: kind, Period: &jsonPeriod{Start: at},
			Action: []jsonConcept{{Coding: []jsonCoding{{System: "http://terminology.hl7.org/CodeSystem/consentaction", Code: "use"}}, Text: "SMS"}}},
	}
	return json.Marshal(r)
}

// ContentHash is the hash a link stores to skip pushing an unchanged
// resource: over the mapped resource with references resolved.
func ContentHash(resource []byte) []byte {
	h := sha256.Sum256(resource)
	return h[:]
}

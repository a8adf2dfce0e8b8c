package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/switchboard-health/switchboard/internal/fhir/r4spec"
)

// ValidationError lists why a resource may not be sent. Issues name element
// paths and rules, never values: the error lands in job errors and dead
// letters.
type ValidationError struct {
	ResourceType string
	Issues       []string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("%s failed validation: %s", e.ResourceType, strings.Join(e.Issues, "; "))
}

// Validator checks every resource before it is sent, by default and with
// no setting: the official R4 JSON schema and the R4 required bindings
// (both embedded, see r4spec), the reference rules, the profiles the
// resource claims (US Core Patient, the core vital-signs profiles) and
// Switchboard's own rules for the types it maps. Issues are named
// "<element path>: <rule>: <what>", rule one of schema, binding, reference,
// profile or rule.
type Validator struct {
	schema *jsonschema.Schema
	spec   *r4spec.Spec
}

// ValidateOptions is the context a resource is sent in.
type ValidateOptions struct {
	// FullURLs are the urn:uuid fullUrls of the transaction the resource is
	// sent in: a urn:uuid reference must name one of them. Empty when the
	// resource is sent on its own.
	FullURLs []string
	// ConditionalReferences allows conditional references
	// (Patient?identifier=...): only in a transaction to an endpoint whose
	// CapabilityStatement declares transactions. Otherwise Switchboard
	// resolves them before validating.
	ConditionalReferences bool
}

// NewValidator returns a Validator using the embedded official R4 JSON
// schema, or the schema file at schemaPath when one is given
// (FHIR_JSON_SCHEMA: a newer copy of the same schema). It returns an error
// when the schema cannot be read or compiled.
func NewValidator(schemaPath string) (*Validator, error) {
	spec, err := r4spec.Load()
	if err != nil {
		return nil, err
	}
	v := &Validator{spec: spec}
	if schemaPath == "" {
		v.schema, err = r4spec.Schema()
		return v, err
	}
	v.schema, err = CompileSchema(schemaPath)
	return v, err
}

// CompileSchema compiles the official FHIR R4 JSON schema file.
func CompileSchema(path string) (*jsonschema.Schema, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("error reading FHIR JSON schema: %w", err)
	}
	return r4spec.CompileSchema(b)
}

// ValidateSchema checks resource against a compiled schema; the error lists
// the failing locations and keywords only.
func ValidateSchema(s *jsonschema.Schema, resource []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(resource))
	if err != nil {
		return &ValidationError{ResourceType: "resource", Issues: []string{"not JSON"}}
	}
	err = s.Validate(inst)
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		var issues []string
		collectSchemaIssues(resourceTypeOf(resource), ve, &issues)
		if len(issues) == 0 {
			issues = []string{"schema"}
		}
		return &ValidationError{ResourceType: resourceTypeOf(resource), Issues: issues}
	}
	return err
}

func collectSchemaIssues(rt string, ve *jsonschema.ValidationError, out *[]string) {
	if len(ve.Causes) == 0 {
		loc := rt
		for _, p := range ve.InstanceLocation {
			if _, err := strconv.Atoi(p); err == nil {
				loc += "[" + p + "]"
			} else {
				loc += "." + p
			}
		}
		kw := ""
		if ve.ErrorKind != nil {
			kw = strings.Join(ve.ErrorKind.KeywordPath(), "/")
		}
		if len(*out) < 20 {
			*out = append(*out, fmt.Sprintf("%s: schema: %s", loc, kw))
		}
		return
	}
	for _, c := range ve.Causes {
		collectSchemaIssues(rt, c, out)
	}
}

func resourceTypeOf(b []byte) string {
	var r struct {
		ResourceType string `json:"resourceType"`
	}
	_ = json.Unmarshal(b, &r)
	if r.ResourceType == "" {
		return "resource"
	}
	return r.ResourceType
}

// Validate checks one resource about to be sent in the context o. It
// returns a *ValidationError listing every problem found.
func (v *Validator) Validate(resource []byte, o ValidateOptions) error {
	var r map[string]any
	dec := json.NewDecoder(bytes.NewReader(resource))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil || r == nil {
		return &ValidationError{ResourceType: "resource", Issues: []string{"resource: schema: not a JSON object"}}
	}
	c := &checker{opts: o, spec: v.spec}
	c.resource(r)
	rt, _ := r["resourceType"].(string)
	if rt == "" {
		rt = "resource"
	}
	if c.spec != nil && rt != "resource" {
		if !c.spec.IsResource(rt) {
			c.add(rt, "schema: not an R4 resource type")
		} else {
			c.bindings(rt, rt, r)
		}
	}
	if v.schema != nil {
		var ve *ValidationError
		if err := ValidateSchema(v.schema, resource); errors.As(err, &ve) {
			c.issues = append(c.issues, ve.Issues...)
		} else if err != nil {
			return err
		}
	}
	if len(c.issues) > 0 {
		return &ValidationError{ResourceType: rt, Issues: c.issues}
	}
	return nil
}

type checker struct {
	issues []string
	opts   ValidateOptions
	spec   *r4spec.Spec
}

// add records an issue; formats that do not start with a rule name
// (schema, binding, reference, profile) are Switchboard's own rules.
func (c *checker) add(path, format string, a ...any) {
	if r, _, _ := strings.Cut(format, ":"); !slices.Contains([]string{"schema", "binding", "reference", "profile"}, r) {
		format = "rule: " + format
	}
	if len(c.issues) < 30 {
		c.issues = append(c.issues, path+": "+fmt.Sprintf(format, a...))
	}
}

var (
	reResourceType = regexp.MustCompile(`^[A-Z][A-Za-z]{1,63}$`)
	reDate         = regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?$`)
	reDateTime     = regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$`)
	reReference    = regexp.MustCompile(`^(#[A-Za-z0-9\-.]+|urn:uuid:[0-9a-f-]{36}|([A-Za-z][A-Za-z0-9+.-]*://[^\s]+/)?[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}(/_history/[A-Za-z0-9\-.]{1,64})?|[A-Z][A-Za-z]+\?[^\s]+)$`)
	reConditional  = regexp.MustCompile(`^[A-Z][A-Za-z]+\?`)
	reID           = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	reUCUM         = regexp.MustCompile(`^[^\s]+$`)
	reURI          = regexp.MustCompile(`^\S+$`)
)

// resource walks generic structure, then the rules of its type.
func (c *checker) resource(r map[string]any) {
	rt, _ := r["resourceType"].(string)
	if !reResourceType.MatchString(rt) {
		c.add("resourceType", "missing or not a resource type")
		return
	}
	if id, ok := r["id"]; ok {
		if s, _ := id.(string); !reID.MatchString(s) {
			c.add(rt+".id", "not a FHIR id")
		}
	}
	c.structure(rt, r)
	switch rt {
	case "Patient":
		c.patient(r)
	case "Observation":
		c.observation(r)
	case "Device":
		c.device(r)
	case "Communication":
		c.communication(r)
	case "Consent":
		c.consent(r)
	}
	if m, ok := r["meta"].(map[string]any); ok {
		for _, p := range list(m["profile"]) {
			ps, _ := p.(string)
			c.profile(rt, ps, r)
		}
	}
}

// structure checks what holds anywhere: no empty objects, arrays or
// strings, and the data types of elements it recognises by name.
func (c *checker) structure(path string, v any) {
	switch t := v.(type) {
	case map[string]any:
		if len(t) == 0 {
			c.add(path, "empty object")
		}
		for k, e := range t {
			p := path + "." + k
			switch k {
			case "reference":
				s, ok := e.(string)
				switch {
				case !ok || !reReference.MatchString(s):
					c.add(p, "reference: not a literal or conditional reference")
				case strings.HasPrefix(s, "urn:uuid:") && !slices.Contains(c.opts.FullURLs, s):
					c.add(p, "reference: urn:uuid reference to no entry of the transaction it is sent in")
				case reConditional.MatchString(s) && !c.opts.ConditionalReferences:
					c.add(p, "reference: conditional reference the endpoint cannot resolve here (Switchboard resolves them first; none or several matched)")
				}
			case "coding":
				for i, cd := range list(e) {
					m, _ := cd.(map[string]any)
					if s, _ := m["system"].(string); !reURI.MatchString(s) {
						c.add(fmt.Sprintf("%s[%d].system", p, i), "required")
					}
					if s, _ := m["code"].(string); s == "" {
						c.add(fmt.Sprintf("%s[%d].code", p, i), "required")
					}
				}
			case "identifier":
				for i, id := range list(e) {
					m, _ := id.(map[string]any)
					if s, _ := m["system"].(string); !reURI.MatchString(s) {
						c.add(fmt.Sprintf("%s[%d].system", p, i), "required")
					}
					if s, _ := m["value"].(string); s == "" {
						c.add(fmt.Sprintf("%s[%d].value", p, i), "required")
					}
				}
			case "birthDate":
				if s, _ := e.(string); !reDate.MatchString(s) {
					c.add(p, "not a date")
				}
			case "effectiveDateTime", "dateTime", "start", "end", "sent", "received", "issued", "lastUpdated":
				if s, _ := e.(string); !reDateTime.MatchString(s) {
					c.add(p, "not a dateTime")
				}
			}
			c.structure(p, e)
		}
	case []any:
		if len(t) == 0 {
			c.add(path, "empty array")
		}
		for i, e := range t {
			c.structure(fmt.Sprintf("%s[%d]", path, i), e)
		}
	case string:
		if strings.TrimSpace(t) == "" {
			c.add(path, "empty string")
		}
	case nil:
		c.add(path, "null")
	}
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func obj(m map[string]any, k string) map[string]any {
	o, _ := m[k].(map[string]any)
	return o
}

func (c *checker) oneOf(path string, v string, allowed ...string) {
	if !slices.Contains(allowed, v) {
		c.add(path, "required, one of %s", strings.Join(allowed, ", "))
	}
}

func (c *checker) referenceTo(path string, ref map[string]any, types ...string) {
	s := str(ref, "reference")
	if s == "" {
		c.add(path, "required reference")
		return
	}
	if strings.HasPrefix(s, "urn:uuid:") || strings.HasPrefix(s, "#") {
		return
	}
	t := s
	if i := strings.LastIndex(strings.Split(s, "?")[0], "/"); i >= 0 {
		parts := strings.Split(strings.Split(s, "/_history/")[0], "/")
		if len(parts) >= 2 {
			t = parts[len(parts)-2]
		}
	}
	t, _, _ = strings.Cut(t, "?")
	if !slices.Contains(types, t) {
		c.add(path, "must refer to %s", strings.Join(types, " or "))
	}
}

func hasCoding(cc map[string]any, system, code string) bool {
	for _, cd := range list(cc["coding"]) {
		m, _ := cd.(map[string]any)
		if str(m, "system") == system && str(m, "code") == code {
			return true
		}
	}
	return false
}

func (c *checker) patient(r map[string]any) {
	for i, n := range list(r["name"]) {
		m, _ := n.(map[string]any)
		if str(m, "family") == "" && len(list(m["given"])) == 0 && str(m, "text") == "" && len(list(m["extension"])) == 0 {
			c.add(fmt.Sprintf("Patient.name[%d]", i), "family, given, text or a data-absent-reason extension required")
		}
	}
	if g, ok := r["gender"]; ok {
		s, _ := g.(string)
		c.oneOf("Patient.gender", s, "male", "female", "other", "unknown")
	}
	for i, t := range list(r["telecom"]) {
		m, _ := t.(map[string]any)
		if str(m, "value") != "" {
			c.oneOf(fmt.Sprintf("Patient.telecom[%d].system", i), str(m, "system"), "phone", "fax", "email", "pager", "url", "sms", "other")
		}
	}
}

var choiceValue = []string{"valueQuantity", "valueCodeableConcept", "valueString", "valueBoolean", "valueInteger",
	"valueRange", "valueRatio", "valueSampledData", "valueTime", "valueDateTime", "valuePeriod"}

func (c *checker) observation(r map[string]any) {
	c.oneOf("Observation.status", str(r, "status"), "registered", "preliminary", "final", "amended", "corrected",
		"cancelled", "entered-in-error", "unknown")
	code := obj(r, "code")
	if len(list(code["coding"])) == 0 && str(code, "text") == "" {
		c.add("Observation.code", "required")
	}
	if s := obj(r, "subject"); s != nil {
		c.referenceTo("Observation.subject", s, "Patient", "Group", "Device", "Location")
	}
	if d := obj(r, "device"); d != nil {
		c.referenceTo("Observation.device", d, "Device", "DeviceMetric")
	}
	effective := 0
	for _, k := range []string{"effectiveDateTime", "effectivePeriod", "effectiveTiming", "effectiveInstant"} {
		if _, ok := r[k]; ok {
			effective++
		}
	}
	if effective > 1 {
		c.add("Observation.effective[x]", "only one of its types allowed")
	}
	values := 0
	for _, k := range choiceValue {
		if _, ok := r[k]; ok {
			values++
		}
	}
	if values > 1 {
		c.add("Observation.value[x]", "only one of its types allowed")
	}
	if values > 0 && r["dataAbsentReason"] != nil {
		c.add("Observation.dataAbsentReason", "not allowed with a value")
	}
	if q := obj(r, "valueQuantity"); q != nil {
		if _, ok := q["value"].(json.Number); !ok {
			c.add("Observation.valueQuantity.value", "required number")
		}
		if str(q, "code") != "" && str(q, "system") == "" {
			c.add("Observation.valueQuantity.system", "required with a code")
		}
	}
	if p := obj(r, "effectivePeriod"); p != nil && str(p, "start") == "" {
		c.add("Observation.effectivePeriod.start", "required")
	}
}

func (c *checker) device(r map[string]any) {
	for i, n := range list(r["deviceName"]) {
		m, _ := n.(map[string]any)
		if str(m, "name") == "" {
			c.add(fmt.Sprintf("Device.deviceName[%d].name", i), "required")
		}
		c.oneOf(fmt.Sprintf("Device.deviceName[%d].type", i), str(m, "type"), "udi-label-name", "user-friendly-name",
			"patient-reported-name", "manufacturer-name", "model-name", "other")
	}
	if s, ok := r["status"]; ok {
		v, _ := s.(string)
		c.oneOf("Device.status", v, "active", "inactive", "entered-in-error", "unknown")
	}
	if p := obj(r, "patient"); p != nil {
		c.referenceTo("Device.patient", p, "Patient")
	}
}

func (c *checker) communication(r map[string]any) {
	c.oneOf("Communication.status", str(r, "status"), "preparation", "in-progress", "not-done", "on-hold", "stopped",
		"completed", "entered-in-error", "unknown")
	for i, p := range list(r["payload"]) {
		m, _ := p.(map[string]any)
		n := 0
		for _, k := range []string{"contentString", "contentAttachment", "contentReference"} {
			if _, ok := m[k]; ok {
				n++
			}
		}
		if n != 1 {
			c.add(fmt.Sprintf("Communication.payload[%d].content[x]", i), "exactly one of its types required")
		}
	}
	if s := obj(r, "subject"); s != nil {
		c.referenceTo("Communication.subject", s, "Patient", "Group")
	}
}

func (c *checker) consent(r map[string]any) {
	c.oneOf("Consent.status", str(r, "status"), "draft", "proposed", "active", "rejected", "inactive", "entered-in-error")
	if obj(r, "scope") == nil {
		c.add("Consent.scope", "required")
	}
	if len(list(r["category"])) == 0 {
		c.add("Consent.category", "at least one required")
	}
	if r["policy"] == nil && r["policyRule"] == nil {
		c.add("Consent", "policy or policyRule required (ppc-1)")
	}
	if p := obj(r, "patient"); p != nil {
		c.referenceTo("Consent.patient", p, "Patient")
	}
	if pr := obj(r, "provision"); pr != nil {
		if t, ok := pr["type"]; ok {
			s, _ := t.(string)
			c.oneOf("Consent.provision.type", s, "deny", "permit")
		}
	}
}

// vitalProfiles are the core vital-signs profiles: LOINC code each requires
// and the UCUM codes allowed.
var vitalProfiles = map[string]struct {
	code  string
	units []string
}{
	"http://hl7.org/fhir/StructureDefinition/heartrate":  {"8867-4", []string{"/min"}},
	"http://hl7.org/fhir/StructureDefinition/resprate":   {"9279-1", []string{"/min"}},
	"http://hl7.org/fhir/StructureDefinition/oxygensat":  {"2708-6", []string{"%"}},
	"http://hl7.org/fhir/StructureDefinition/bodyweight": {"29463-7", []string{"kg", "g", "[lb_av]"}},
	"http://hl7.org/fhir/StructureDefinition/bodyheight": {"8302-2", []string{"cm", "[in_i]"}},
	"http://hl7.org/fhir/StructureDefinition/bodytemp":   {"8310-5", []string{"Cel", "[degF]"}},
	ProfileBloodPressure: {"85354-9", nil},
	ProfileVitalSigns:    {},
}

func isVitalProfile(url string) bool {
	_, ok := vitalProfiles[url]
	return ok
}

// profile checks the profiles Switchboard claims; any other claimed
// profile is refused, since nothing here could vouch for it.
func (c *checker) profile(rt, url string, r map[string]any) {
	switch {
	case url == ProfileUSCorePatient && rt == "Patient":
		if len(list(r["identifier"])) == 0 {
			c.add("Patient.identifier", "profile: US Core: at least one required")
		}
		if len(list(r["name"])) == 0 {
			c.add("Patient.name", "profile: US Core: at least one required")
		}
		if str(r, "gender") == "" {
			c.add("Patient.gender", "profile: US Core: required")
		}
	case rt == "Observation" && isVitalProfile(url):
		vp := vitalProfiles[url]
		cat := false
		for _, cc := range list(r["category"]) {
			m, _ := cc.(map[string]any)
			cat = cat || hasCoding(m, SystemObservationCategory, "vital-signs")
		}
		if !cat {
			c.add("Observation.category", "profile: vital signs: category vital-signs required")
		}
		code := obj(r, "code")
		loinc := false
		for _, cd := range list(code["coding"]) {
			m, _ := cd.(map[string]any)
			loinc = loinc || str(m, "system") == SystemLOINC
		}
		if !loinc {
			c.add("Observation.code", "profile: vital signs: a LOINC code required")
		}
		if vp.code != "" && !hasCoding(code, SystemLOINC, vp.code) {
			c.add("Observation.code", "profile: requires LOINC %s", vp.code)
		}
		if obj(r, "subject") == nil {
			c.add("Observation.subject", "profile: vital signs: required")
		} else {
			c.referenceTo("Observation.subject", obj(r, "subject"), "Patient")
		}
		if r["effectiveDateTime"] == nil && r["effectivePeriod"] == nil {
			c.add("Observation.effective[x]", "profile: vital signs: dateTime or Period required")
		}
		q := obj(r, "valueQuantity")
		if q == nil && r["dataAbsentReason"] == nil && r["component"] == nil && r["hasMember"] == nil {
			c.add("Observation.value[x]", "profile: vital signs: valueQuantity or dataAbsentReason required")
		}
		if q != nil {
			if str(q, "system") != SystemUCUM || str(q, "code") == "" || !reUCUM.MatchString(str(q, "code")) {
				c.add("Observation.valueQuantity", "profile: vital signs: UCUM system and code required")
			}
			if str(q, "unit") == "" {
				c.add("Observation.valueQuantity.unit", "profile: vital signs: required")
			}
			if len(vp.units) > 0 && !slices.Contains(vp.units, str(q, "code")) {
				c.add("Observation.valueQuantity.code", "profile: allows %s", strings.Join(vp.units, ", "))
			}
		}
		if url == ProfileBloodPressure {
			c.bloodPressure(r)
		}
	default:
		c.add(rt+".meta.profile", "profile: %s is not one Switchboard can validate", url)
	}
}

// bloodPressure checks the core bp profile's components: one systolic
// (8480-6) and one diastolic (8462-4), each a valueQuantity in mm[Hg] (or a
// dataAbsentReason).
func (c *checker) bloodPressure(r map[string]any) {
	if r["valueQuantity"] != nil {
		c.add("Observation.valueQuantity", "profile: blood pressure: the values go in components")
	}
	for _, code := range []string{LOINCSystolic, LOINCDiastolic} {
		n := 0
		for i, comp := range list(r["component"]) {
			m, _ := comp.(map[string]any)
			if !hasCoding(obj(m, "code"), SystemLOINC, code) {
				continue
			}
			n++
			q := obj(m, "valueQuantity")
			if q == nil && m["dataAbsentReason"] == nil {
				c.add(fmt.Sprintf("Observation.component[%d].value[x]", i), "profile: blood pressure: valueQuantity or dataAbsentReason required")
			}
			if q != nil && (str(q, "system") != SystemUCUM || str(q, "code") != "mm[Hg]") {
				c.add(fmt.Sprintf("Observation.component[%d].valueQuantity", i), "profile: blood pressure: UCUM mm[Hg] required")
			}
		}
		if n != 1 {
			c.add("Observation.component", "profile: blood pressure: exactly one component with LOINC %s required", code)
		}
	}
}

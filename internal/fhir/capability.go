package fhir

import "encoding/json"

// Update methods of a write plan.
const (
	// UpdatePut: read, merge, PUT the whole resource with If-Match.
	UpdatePut = "put"
	// UpdatePatch: read, merge, PATCH (JSON Patch) only the elements that
	// differ, testing meta.versionId and sending If-Match.
	UpdatePatch = "patch"
)

// WritePlan is how Switchboard writes to one endpoint, decided from its
// CapabilityStatement (PlanFor) and stored on the endpoint row
// (ehr_endpoints.write_plan) by `switchboard ehr check`.
type WritePlan struct {
	// Update is UpdatePatch where every pushed type declares patch, else
	// UpdatePut.
	Update string `json:"update"`
}

// PlanFor decides the write plan for the resource types pushed.
func PlanFor(c *Capabilities, pushTypes []string) WritePlan {
	p := WritePlan{Update: UpdatePut}
	if c == nil {
		return p
	}
	types := pushTypes
	if len(types) == 0 || (len(types) == 1 && types[0] == "*") {
		types = []string{"Patient", "Observation"}
	}
	for _, t := range types {
		if t == "*" {
			continue
		}
		if c.Require("patch", t) != nil {
			return p
		}
	}
	p.Update = UpdatePatch
	return p
}

// Plan returns the endpoint's stored write plan, or the one its
// capabilities give when `ehr check` has not stored one.
func (e *Endpoint) Plan() WritePlan {
	var p WritePlan
	if len(e.Row.WritePlan) > 0 && json.Unmarshal(e.Row.WritePlan, &p) == nil && p.Update != "" {
		return p
	}
	return PlanFor(e.Caps, e.Row.PushTypes)
}

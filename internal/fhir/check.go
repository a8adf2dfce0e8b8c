package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-health/switchboard/db"
)

// CheckReport is what `switchboard ehr check NAME` found in the endpoint's
// CapabilityStatement and what Switchboard does differently because of it.
type CheckReport struct {
	Endpoint    string `json:"endpoint"`
	FHIRVersion string `json:"fhirVersion"`
	Software    string `json:"software,omitempty"`
	// Resources: every type Switchboard pushes to or pulls from it.
	Resources []ResourceReport `json:"resources"`
	// Transaction: system-level transaction declared.
	Transaction bool `json:"transaction"`
	// Subscriptions: the Subscription resource can be created (rest-hook
	// notifications instead of polling alone).
	Subscriptions bool      `json:"subscriptions"`
	SMART         bool      `json:"smart"`
	Plan          WritePlan `json:"plan"`
	// Consequences, one sentence each.
	Consequences []string `json:"consequences"`
}

// ResourceReport is one resource type's support.
type ResourceReport struct {
	Type              string   `json:"type"`
	Declared          bool     `json:"declared"`
	Interactions      []string `json:"interactions,omitempty"`
	ConditionalCreate bool     `json:"conditionalCreate"`
	ConditionalUpdate bool     `json:"conditionalUpdate"`
	Patch             bool     `json:"patch"`
	LastUpdated       bool     `json:"lastUpdated"`
	Profiles          []string `json:"profiles,omitempty"`
}

// Report summarises capabilities for the types pushed and pulled.
func Report(name string, c *Capabilities, pushTypes, pullTypes []string, pullEvery string) *CheckReport {
	r := &CheckReport{Endpoint: name, FHIRVersion: c.FHIRVersion, Software: c.Software, SMART: c.SMART != nil,
		Transaction: c.Require("transaction", "") == nil, Plan: PlanFor(c, pushTypes)}
	types := map[string]bool{}
	for _, t := range append(slices.Clone(pushTypes), pullTypes...) {
		if t == "*" {
			for _, x := range []string{"Patient", "Observation", "Device", "Communication", "Consent"} {
				types[x] = true
			}
		} else {
			types[t] = true
		}
	}
	names := make([]string, 0, len(types))
	for t := range types {
		names = append(names, t)
	}
	sort.Strings(names)
	say := func(f string, a ...any) { r.Consequences = append(r.Consequences, fmt.Sprintf(f, a...)) }
	for _, t := range names {
		rc, ok := c.Resources[t]
		rr := ResourceReport{Type: t, Declared: ok, Interactions: rc.Interactions, ConditionalCreate: c.Require("conditional-create", t) == nil,
			ConditionalUpdate: rc.ConditionalUpdate, Patch: c.Require("patch", t) == nil,
			LastUpdated: slices.Contains(rc.SearchParams, "_lastUpdated"), Profiles: rc.Profiles}
		r.Resources = append(r.Resources, rr)
		pushed := slices.Contains(pushTypes, t) || slices.Contains(pushTypes, "*")
		pulled := slices.Contains(pullTypes, t)
		switch {
		case pushed && !ok:
			say("%s is not declared: its pushes end as permanent dead letters (undeclared interaction), nothing is sent", t)
		case pushed && !rr.ConditionalCreate:
			say("%s has no conditional create: a new %s cannot be written idempotently, so its pushes end as permanent dead letters", t, t)
		case pushed && c.Require("update", t) != nil:
			say("%s has no update: changes to an existing %s end as permanent dead letters", t, t)
		}
		if pulled && (!ok || !rr.LastUpdated || c.Require("search-type", t) != nil) {
			say("%s cannot be searched by _lastUpdated: it is not pulled", t)
		}
	}
	if r.Plan.Update == UpdatePatch {
		say("updates are JSON Patch (read, merge the owned elements, PATCH only what differs, testing the version)")
	} else {
		say("updates are read, merge the owned elements, PUT with If-Match (patch is not declared for every pushed type)")
	}
	if r.Transaction {
		say("a new patient with its first observation (and device) is written in one transaction")
	} else {
		say("no transaction: a new patient, its device and observation are written one by one, patient first")
	}
	if rc, ok := c.Resources["Subscription"]; ok && slices.Contains(rc.Interactions, "create") {
		r.Subscriptions = true
		say("Subscription is supported: rest-hook notifications can trigger pulls (pulls still run every %s)", pullEvery)
	} else {
		say("no Subscription: changes are found by polling every %s", pullEvery)
	}
	return r
}

// CheckEndpoint reads the endpoint's CapabilityStatement (and SMART
// configuration), stores the capability summary and the write plan on the
// endpoint row — the writer follows the plan — and audits the check.
func CheckEndpoint(ctx context.Context, pool *pgxpool.Pool, httpClient *http.Client, name, actor string) (*CheckReport, error) {
	caps, err := TestEndpoint(ctx, pool, httpClient, name, actor)
	if err != nil {
		return nil, err
	}
	q := db.New()
	ep, err := q.EHREndpointGetByName(ctx, pool, name)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, &InputError{"no EHR endpoint named " + name}
	} else if err != nil {
		return nil, err
	}
	every := fmt.Sprint(ep.PullInterval.Microseconds/1e6) + "s"
	r := Report(name, caps, ep.PushTypes, ep.PullTypes, every)
	plan, _ := json.Marshal(r.Plan)
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := q.EHREndpointSetWritePlan(ctx, tx, db.EHREndpointSetWritePlanParams{ID: ep.ID, WritePlan: plan}); err != nil {
			return err
		}
		return q.AuditInsert(ctx, tx, db.AuditInsertParams{Actor: actor, Action: "ehr.check", TargetType: "ehr_endpoint", TargetID: name, Detail: plan})
	})
	return r, err
}

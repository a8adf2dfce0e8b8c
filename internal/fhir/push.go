package fhir

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/obskind"
	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/jobs"
)

// PushWorker works fhir_push jobs. Safe for concurrent use.
type PushWorker struct {
	river.WorkerDefaults[jobs.FHIRPushArgs]
	deps      Deps
	eps       *endpoints
	validator *Validator
	kinds     *obskind.Source
	q         *db.Queries
	// UnavailableLimit is job_kinds.unavailable_limit of fhir_push.
	UnavailableLimit time.Duration
}

// NewPushWorker returns a push worker. It returns an error when the deps
// are incomplete or the configured JSON schema does not compile.
func NewPushWorker(d Deps) (*PushWorker, error) {
	d, err := d.check()
	if err != nil {
		return nil, err
	}
	v, err := NewValidator(d.Config.JSONSchema)
	if err != nil {
		return nil, err
	}
	return &PushWorker{deps: d, eps: newEndpoints(d), validator: v, kinds: obskind.NewSource(d.Pool), q: db.New(),
		UnavailableLimit: 24 * time.Hour}, nil
}

// Timeout bounds one job.
func (w *PushWorker) Timeout(*river.Job[jobs.FHIRPushArgs]) time.Duration {
	return w.deps.Config.JobTimeout
}

// Work pushes one entity to one endpoint.
func (w *PushWorker) Work(ctx context.Context, job *river.Job[jobs.FHIRPushArgs]) error {
	a := job.Args
	ep, err := w.eps.get(ctx, a.EndpointID)
	if errors.Is(err, pgx.ErrNoRows) {
		return cancel(ctx, "permanent", fmt.Errorf("ehr endpoint %d does not exist", a.EndpointID))
	}
	if err != nil {
		return outcome(ctx, job.JobRow.Attempt, "", err)
	}
	if !ep.Row.Enabled {
		return w.held(ctx, ep, job.JobRow, a)
	}
	if err := ep.ready(ctx, w.deps, job.JobRow, w.UnavailableLimit); err != nil {
		return err
	}
	err = w.push(ctx, ep, a)
	var ue *resilience.UnavailableError
	if errors.As(err, &ue) {
		return resilience.Snooze(ctx, job.JobRow, err, w.UnavailableLimit)
	}
	return outcome(ctx, job.JobRow.Attempt, DestinationName(ep.Row.Name), err)
}

// outcome turns an error into the job's result by its class. A throttled
// call holds the job (hold_reason throttled, on destination dest) for the
// server's Retry-After.
func outcome(ctx context.Context, attempt int, dest string, err error) error {
	if err == nil {
		return nil
	}
	var ce *ConfigError
	if errors.As(err, &ce) {
		return cancel(ctx, "permanent", err)
	}
	switch Classify(err, attempt) {
	case ClassThrottled:
		var fe *Error
		wait := 30 * time.Second
		if errors.As(err, &fe) && fe.RetryAfter > 0 {
			wait = fe.RetryAfter
		}
		return resilience.HoldFor(ctx, resilience.HoldThrottled, dest, wait)
	case ClassDuplicate:
		_ = river.MetadataSet(ctx, "fhir_alert", "duplicate_identifier")
		return cancel(ctx, "permanent", err)
	case ClassPermanent, ClassAuth:
		return cancel(ctx, "permanent", err)
	default:
		return err
	}
}

func cancel(ctx context.Context, class string, err error) error {
	_ = river.MetadataSet(ctx, "outcome_class", class)
	return river.JobCancel(err)
}

func (w *PushWorker) push(ctx context.Context, ep *Endpoint, a jobs.FHIRPushArgs) error {
	pool := w.deps.Pool
	switch a.Entity {
	case jobs.FHIREntityPatient:
		p, err := w.q.PatientGet(ctx, pool, a.EntityID)
		if err != nil {
			return missing("patient", a.EntityID, err)
		}
		_, err = w.pushPatient(ctx, ep, p)
		return err
	case jobs.FHIREntityObservation:
		o, err := w.q.ObservationGet(ctx, pool, a.EntityID)
		if err != nil {
			return missing("observation", a.EntityID, err)
		}
		if strings.HasPrefix(o.Source, "ehr:") {
			return nil // data from an EHR is never pushed to an EHR
		}
		return w.pushObservation(ctx, ep, o)
	case jobs.FHIREntityDevice:
		d, err := w.q.DeviceGet(ctx, pool, a.EntityID)
		if err != nil {
			return missing("device", a.EntityID, err)
		}
		p, err := w.q.PatientGet(ctx, pool, d.PatientID)
		if err != nil {
			return missing("patient", d.PatientID, err)
		}
		pref, err := w.patientRef(ctx, ep, p)
		if err != nil {
			return err
		}
		_, err = w.pushDevice(ctx, ep, d, pref)
		return err
	case jobs.FHIREntityCommunication:
		m, err := w.q.MessageGet(ctx, pool, a.EntityID)
		if err != nil {
			return missing("message", a.EntityID, err)
		}
		if m.PatientRef == nil || m.Status == "queued" || m.Status == "sending" {
			return nil
		}
		p, err := w.q.PatientGetByExternalRef(ctx, pool, *m.PatientRef)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		} else if err != nil {
			return err
		}
		pref, err := w.patientRef(ctx, ep, p)
		if err != nil {
			return err
		}
		opts := ep.opts
		opts.PatientRef = pref
		_, err = w.pushOne(ctx, ep, jobs.FHIREntityCommunication, m.ID, "Communication",
			Identifier{opts.IdentifierSystem, identifierValue("message", m.ID)},
			func() ([]byte, error) { return MapCommunication(m, opts) }, nil)
		return err
	case jobs.FHIREntityConsent:
		p, err := w.q.PatientGet(ctx, pool, a.EntityID)
		if err != nil {
			return missing("patient", a.EntityID, err)
		}
		if p.PhoneE164 == nil {
			return nil
		}
		c, err := w.q.ConsentGet(ctx, pool, *p.PhoneE164)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		} else if err != nil {
			return err
		}
		pref, err := w.patientRef(ctx, ep, p)
		if err != nil {
			return err
		}
		opts := ep.opts
		opts.PatientRef = pref
		_, err = w.pushOne(ctx, ep, jobs.FHIREntityConsent, p.ID, "Consent",
			Identifier{opts.IdentifierSystem, identifierValue("sms-consent", p.ID)},
			func() ([]byte, error) { return MapConsent(p.ID, c, opts) }, nil)
		return err
	case jobs.FHIREntityOutbound:
		o, err := w.q.FHIROutboundGet(ctx, pool, a.EntityID)
		if err != nil {
			return missing("fhir_outbound", a.EntityID, err)
		}
		ident := Identifier{ep.opts.IdentifierSystem, identifierValue("outbound", o.ID)}
		body, err := prepareOutbound(o.Resource, ident, ep.opts.Tag)
		if err != nil {
			return err
		}
		if body, err = w.resolveReferences(ctx, ep, body); err != nil {
			return err
		}
		_, err = w.pushOne(ctx, ep, jobs.FHIREntityOutbound, o.ID, o.ResourceType, ident,
			func() ([]byte, error) { return body, nil }, nil)
		return err
	}
	return &ConfigError{Msg: "unknown entity " + strconv.Quote(a.Entity)}
}

func missing(what string, id int64, err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return &ConfigError{Msg: fmt.Sprintf("%s %d does not exist", what, id)}
	}
	return fmt.Errorf("error loading %s: %w", what, err)
}

// prepareOutbound adds Switchboard's identifier and echo tag to an
// app-built resource.
func prepareOutbound(raw []byte, ident Identifier, tag Coding) ([]byte, error) {
	var r map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		return nil, &ValidationError{ResourceType: "resource", Issues: []string{"not a JSON object"}}
	}
	ids, _ := r["identifier"].([]any)
	r["identifier"] = append(ids, map[string]any{"system": ident.System, "value": ident.Value})
	meta, _ := r["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	tags, _ := meta["tag"].([]any)
	meta["tag"] = append(tags, map[string]any{"system": tag.System, "code": tag.Code})
	r["meta"] = meta
	return json.Marshal(r)
}

// patientRef returns "Patient/<id>" on the endpoint, pushing the patient
// first when it is not there yet.
func (w *PushWorker) patientRef(ctx context.Context, ep *Endpoint, p db.Patient) (string, error) {
	link, err := w.q.FHIRLinkGet(ctx, w.deps.Pool, db.FHIRLinkGetParams{EndpointID: ep.Row.ID, Entity: jobs.FHIREntityPatient, EntityID: p.ID})
	if err == nil {
		return "Patient/" + link.ResourceID, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", err
	}
	l, err := w.pushPatient(ctx, ep, p)
	if err != nil {
		return "", err
	}
	return "Patient/" + l.ResourceID, nil
}

func (w *PushWorker) pushPatient(ctx context.Context, ep *Endpoint, p db.Patient) (db.FHIRLink, error) {
	return w.pushOne(ctx, ep, jobs.FHIREntityPatient, p.ID, "Patient",
		Identifier{ep.opts.IdentifierSystem, PatientIdentifierValue(p)},
		func() ([]byte, error) { return MapPatient(p, ep.opts) }, nil)
}

func (w *PushWorker) pushDevice(ctx context.Context, ep *Endpoint, d db.Device, patientRef string) (db.FHIRLink, error) {
	opts := ep.opts
	opts.PatientRef = patientRef
	return w.pushOne(ctx, ep, jobs.FHIREntityDevice, d.ID, "Device",
		Identifier{opts.IdentifierSystem, identifierValue("device", d.ID)},
		func() ([]byte, error) { return MapDevice(d, opts) }, nil)
}

// pushObservation makes sure the patient (and the device, when the
// endpoint takes devices) is there first: when the patient is not linked
// yet and the server declares transactions, patient, device and observation
// go in one transaction of conditional creates.
func (w *PushWorker) pushObservation(ctx context.Context, ep *Endpoint, obs db.Observation) error {
	if _, ok := bloodPressurePartnerKind[obs.Kind]; ok {
		// Both halves of a reading may have a push job of their own; run
		// one at a time, so the second finds the panel the first wrote.
		return w.oneAtATime(ctx, readingLockKey(ep.Row.ID, obs), func() error { return w.pushObservationNow(ctx, ep, obs) })
	}
	return w.pushObservationNow(ctx, ep, obs)
}

func (w *PushWorker) pushObservationNow(ctx context.Context, ep *Endpoint, obs db.Observation) error {
	op, err := w.observationToPush(ctx, ep.Row.ID, obs)
	if err != nil {
		return recordErr(err, "Observation", jobs.FHIREntityObservation, obs.ID, "")
	}
	o := op.anchor
	p, err := w.q.PatientGet(ctx, w.deps.Pool, o.PatientID)
	if err != nil {
		return missing("patient", o.PatientID, err)
	}
	var dev *db.Device
	if o.DeviceID != nil && ep.Pushes("Device") {
		d, err := w.q.DeviceGet(ctx, w.deps.Pool, *o.DeviceID)
		if err != nil {
			return missing("device", *o.DeviceID, err)
		}
		dev = &d
	}
	_, err = w.q.FHIRLinkGet(ctx, w.deps.Pool, db.FHIRLinkGetParams{EndpointID: ep.Row.ID, Entity: jobs.FHIREntityPatient, EntityID: p.ID})
	if errors.Is(err, pgx.ErrNoRows) {
		caps, err := ep.capabilities(ctx, w.deps)
		if err != nil {
			return err
		}
		if caps.Require("transaction", "") == nil {
			return w.pushObservationTransaction(ctx, ep, p, dev, op)
		}
	} else if err != nil {
		return err
	}
	pref, err := w.patientRef(ctx, ep, p)
	if err != nil {
		return err
	}
	opts := ep.opts
	opts.PatientRef = pref
	if dev != nil {
		l, err := w.deviceLink(ctx, ep, *dev, pref)
		if err != nil {
			return err
		}
		opts.DeviceRef = "Device/" + l.ResourceID
	}
	_, err = w.pushOne(ctx, ep, jobs.FHIREntityObservation, o.ID, "Observation",
		Identifier{opts.IdentifierSystem, identifierValue("observation", o.ID)},
		func() ([]byte, error) { return op.build(opts) }, op.link)
	return err
}

func (w *PushWorker) deviceLink(ctx context.Context, ep *Endpoint, d db.Device, pref string) (db.FHIRLink, error) {
	l, err := w.q.FHIRLinkGet(ctx, w.deps.Pool, db.FHIRLinkGetParams{EndpointID: ep.Row.ID, Entity: jobs.FHIREntityDevice, EntityID: d.ID})
	if err == nil {
		return l, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return l, err
	}
	return w.pushDevice(ctx, ep, d, pref)
}

// knownLink is an entity's fhir_links row on an endpoint as already read
// (found false: there is none), under a lock that keeps any other push from
// writing it since, so the write need not read it again.
type knownLink struct {
	row   db.FHIRLink
	found bool
}

// pushOne writes one resource: a conditional create when not linked yet,
// otherwise (or when the create found an existing resource) a version-aware
// update, re-reading and re-applying on 409/412 a bounded number of times.
// An unchanged resource (same content hash as the link) is not sent. known
// is the entity's link when the caller has read it already; nil reads it.
func (w *PushWorker) pushOne(ctx context.Context, ep *Endpoint, entity string, entityID int64, rt string, ident Identifier,
	build func() ([]byte, error), known *knownLink) (db.FHIRLink, error) {
	link, err := w.write(ctx, ep, entity, entityID, rt, ident, build, known)
	return link, recordErr(err, rt, entity, entityID, link.ResourceID)
}

func (w *PushWorker) write(ctx context.Context, ep *Endpoint, entity string, entityID int64, rt string, ident Identifier,
	build func() ([]byte, error), known *knownLink) (db.FHIRLink, error) {
	body, err := build()
	if err != nil {
		return db.FHIRLink{}, &ValidationError{ResourceType: rt, Issues: []string{err.Error()}}
	}
	if err := w.validator.Validate(body, ValidateOptions{}); err != nil {
		return db.FHIRLink{}, err
	}
	hash := ContentHash(body)
	if known == nil {
		known = &knownLink{}
		known.row, err = w.q.FHIRLinkGet(ctx, w.deps.Pool, db.FHIRLinkGetParams{EndpointID: ep.Row.ID, Entity: entity, EntityID: entityID})
		known.found = err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return known.row, err
		}
	}
	link, linked := known.row, known.found
	if linked && bytes.Equal(link.ContentHash, hash) {
		return link, nil
	}
	var current *Response
	caps, err := ep.capabilities(ctx, w.deps)
	if err != nil {
		return link, err
	}
	if !linked {
		if err := caps.Require("conditional-create", rt); err != nil {
			return link, err
		}
		var resp *Response
		if err := ep.call(ctx, func(ctx context.Context) error {
			var err error
			resp, err = ep.Client.ConditionalCreate(ctx, rt, ident, body)
			return err
		}); err != nil {
			return link, err
		}
		link = db.FHIRLink{EndpointID: ep.Row.ID, Entity: entity, EntityID: entityID, ResourceType: rt,
			ResourceID: resp.ResourceID(), VersionID: ptr(resp.VersionID())}
		if link.ResourceID == "" {
			return link, &Error{Op: "conditional create " + rt, Status: resp.Status, Issues: []string{"no resource id in the answer"}}
		}
		if resp.Status == 201 {
			link.ContentHash = hash
			link.OwnedHashes = ownedHashes(rt, body, ep.opts.IdentifierSystem)
			return link, w.saveLink(ctx, link)
		}
		// 200: a resource with our identifier existed (an earlier attempt
		// whose answer was lost, or data created elsewhere): our body was
		// ignored, so merge it into the one found — if it is ours.
		if len(resp.Body) > 0 && !holdsIdentifier(resp.Body, ident) {
			return db.FHIRLink{}, &IdentityError{ResourceType: rt}
		}
		if err := w.saveLink(ctx, link); err != nil {
			return link, err
		}
		current = resp
	}
	if err := caps.Require("update", rt); err != nil {
		return link, err
	}
	return w.update(ctx, ep, link, rt, body, current)
}

func (w *PushWorker) saveLink(ctx context.Context, l db.FHIRLink) error {
	if err := w.q.FHIRLinkUpsert(ctx, w.deps.Pool, db.FHIRLinkUpsertParams{EndpointID: l.EndpointID, Entity: l.Entity,
		EntityID: l.EntityID, ResourceType: l.ResourceType, ResourceID: l.ResourceID, VersionID: l.VersionID, ContentHash: l.ContentHash,
		OwnedHashes: l.OwnedHashes}); err != nil {
		return fmt.Errorf("error saving fhir link: %w", err)
	}
	return nil
}

// setID puts the server's id into a mapped resource for an update.
func setID(body []byte, id string) ([]byte, error) {
	var r map[string]json.RawMessage
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(id)
	r["id"] = b
	return json.Marshal(r)
}

func uuidURN() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

type bundleEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Request  struct {
		Method      string `json:"method"`
		URL         string `json:"url"`
		IfNoneExist string `json:"ifNoneExist,omitempty"`
	} `json:"request"`
}

// pushObservationTransaction creates patient, device and observation in
// one transaction of conditional creates (idempotent: a retry matches what
// the first attempt created). Entries that already existed (200) are
// linked without a hash, so their next push applies Switchboard's content.
func (w *PushWorker) pushObservationTransaction(ctx context.Context, ep *Endpoint, p db.Patient, dev *db.Device, op observationPush) error {
	o := op.anchor
	type part struct {
		entity string
		id     int64
		rt     string
		ident  Identifier
		build  func(pref, dref string) ([]byte, error)
		urn    string
	}
	sys := ep.opts.IdentifierSystem
	parts := []part{{jobs.FHIREntityPatient, p.ID, "Patient", Identifier{sys, PatientIdentifierValue(p)},
		func(string, string) ([]byte, error) { return MapPatient(p, ep.opts) }, uuidURN()}}
	dref := ""
	if dev != nil {
		d := *dev
		parts = append(parts, part{jobs.FHIREntityDevice, d.ID, "Device", Identifier{sys, identifierValue("device", d.ID)},
			func(pref, _ string) ([]byte, error) {
				opts := ep.opts
				opts.PatientRef = pref
				return MapDevice(d, opts)
			}, uuidURN()})
		dref = parts[1].urn
	}
	parts = append(parts, part{jobs.FHIREntityObservation, o.ID, "Observation", Identifier{sys, identifierValue("observation", o.ID)},
		func(pref, dref string) ([]byte, error) {
			opts := ep.opts
			opts.PatientRef, opts.DeviceRef = pref, dref
			return op.build(opts)
		}, uuidURN()})
	caps := ep.Caps
	entries := make([]bundleEntry, len(parts))
	urns := make([]string, len(parts))
	for i, pt := range parts {
		urns[i] = pt.urn
	}
	for i, pt := range parts {
		if err := caps.Require("conditional-create", pt.rt); err != nil {
			return err
		}
		body, err := pt.build(parts[0].urn, dref)
		if err != nil {
			return &ValidationError{ResourceType: pt.rt, Issues: []string{err.Error()}}
		}
		if err := w.validator.Validate(body, ValidateOptions{FullURLs: urns}); err != nil {
			return err
		}
		entries[i].FullURL = pt.urn
		entries[i].Resource = body
		entries[i].Request.Method = "POST"
		entries[i].Request.URL = pt.rt
		entries[i].Request.IfNoneExist = pt.ident.Search()
	}
	bundle, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries})
	var resp *Response
	if err := ep.call(ctx, func(ctx context.Context) error {
		var err error
		resp, err = ep.Client.Transaction(ctx, bundle)
		return err
	}); err != nil {
		return err
	}
	var out struct {
		Entry []struct {
			Response struct {
				Status   string `json:"status"`
				Location string `json:"location"`
				Etag     string `json:"etag"`
			} `json:"response"`
			Resource struct {
				ID   string `json:"id"`
				Meta struct {
					VersionID string `json:"versionId"`
				} `json:"meta"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(resp.Body, &out); err != nil || len(out.Entry) != len(parts) {
		return &Error{Op: "transaction", Status: resp.Status, Issues: []string{"transaction-response does not match the request"}}
	}
	refs := make([]string, len(parts))
	for i, pt := range parts {
		e := out.Entry[i]
		id, ver := e.Resource.ID, e.Resource.Meta.VersionID
		if m := reHistory.FindStringSubmatch(e.Response.Location); m != nil {
			if id == "" {
				id = m[1]
			}
			if ver == "" {
				ver = m[2]
			}
		}
		if v := parseETag(e.Response.Etag); v != "" {
			ver = v
		}
		if id == "" {
			return &Error{Op: "transaction", Status: resp.Status, Issues: []string{"entry without a resource id"}}
		}
		refs[i] = pt.rt + "/" + id
		link := db.FHIRLink{EndpointID: ep.Row.ID, Entity: pt.entity, EntityID: pt.id, ResourceType: pt.rt, ResourceID: id, VersionID: ptr(ver)}
		if strings.HasPrefix(e.Response.Status, "201") {
			// The hash of what was created, with references resolved.
			dr := ""
			if dev != nil {
				dr = refs[1]
			}
			if pt.rt != "Observation" || dev == nil || refs[1] != "" {
				if body, err := pt.build(refs[0], dr); err == nil {
					link.ContentHash = ContentHash(body)
					link.OwnedHashes = ownedHashes(pt.rt, body, sys)
				}
			}
		}
		if err := w.saveLink(ctx, link); err != nil {
			return err
		}
	}
	return nil
}

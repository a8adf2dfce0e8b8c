package fhir

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/obskind"
	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/jobs"
)

// PullWorker works fhir_pull jobs. Safe for concurrent use.
type PullWorker struct {
	river.WorkerDefaults[jobs.FHIRPullArgs]
	deps  Deps
	eps   *endpoints
	kinds *obskind.Source
	q     *db.Queries
	// UnavailableLimit is job_kinds.unavailable_limit of fhir_pull.
	UnavailableLimit time.Duration
}

// NewPullWorker returns a pull worker, or an error for incomplete deps.
func NewPullWorker(d Deps) (*PullWorker, error) {
	d, err := d.check()
	if err != nil {
		return nil, err
	}
	return &PullWorker{deps: d, eps: newEndpoints(d), kinds: obskind.NewSource(d.Pool), q: db.New(), UnavailableLimit: 6 * time.Hour}, nil
}

// Timeout bounds one job.
func (w *PullWorker) Timeout(*river.Job[jobs.FHIRPullArgs]) time.Duration {
	return w.deps.Config.JobTimeout
}

// Work pulls one resource type from one endpoint since its cursor.
func (w *PullWorker) Work(ctx context.Context, job *river.Job[jobs.FHIRPullArgs]) error {
	a := job.Args
	ep, err := w.eps.get(ctx, a.EndpointID)
	if errors.Is(err, pgx.ErrNoRows) {
		return cancel(ctx, "permanent", fmt.Errorf("ehr endpoint %d does not exist", a.EndpointID))
	}
	if err != nil {
		return outcome(ctx, job.Attempt, "", err)
	}
	if !ep.Row.Enabled || !slices.Contains(ep.Row.PullTypes, a.ResourceType) {
		return nil
	}
	if err := ep.ready(ctx, w.deps, job.JobRow, w.UnavailableLimit); err != nil {
		return err
	}
	more, err := w.pull(ctx, ep, a.ResourceType)
	var ue *resilience.UnavailableError
	if errors.As(err, &ue) {
		return resilience.Snooze(ctx, job.JobRow, err, w.UnavailableLimit)
	}
	if err != nil {
		return outcome(ctx, job.Attempt, DestinationName(ep.Row.Name), err)
	}
	if more {
		// A long backlog continues in a fresh job from the advanced cursor.
		if _, err := w.q.FHIREnqueuePull(ctx, w.deps.Pool, db.FHIREnqueuePullParams{EndpointID: ep.Row.ID, ResourceType: a.ResourceType}); err != nil {
			return fmt.Errorf("error enqueuing the next pull: %w", err)
		}
	}
	return nil
}

// PullResult counts what one pull did.
type PullResult struct {
	Stored, Applied, Unmatched, Echoes, Ignored, Duplicates, Quarantined int
	// Unstorable resources hold what PostgreSQL cannot (see applyEntry).
	Unstorable int
}

// refusedError is a pulled value record_observation refused.
type refusedError struct{ reason string }

func (e *refusedError) Error() string { return "refused: " + e.reason }

func (w *PullWorker) pull(ctx context.Context, ep *Endpoint, rt string) (bool, error) {
	caps, err := ep.capabilities(ctx, w.deps)
	if err != nil {
		return false, err
	}
	if err := caps.Require("search-type", rt); err != nil {
		return false, err
	}
	cur, err := w.q.FHIRPullCursorGet(ctx, w.deps.Pool, db.FHIRPullCursorGetParams{EndpointID: ep.Row.ID, ResourceType: rt})
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, err
	}
	q := url.Values{}
	q.Set("_sort", "_lastUpdated")
	q.Set("_count", strconv.Itoa(w.deps.Config.PullPageSize))
	if cur.Cursor != nil {
		q.Set("_lastUpdated", "gt"+cur.Cursor.Add(-w.deps.Config.PullOverlap).UTC().Format(time.RFC3339Nano))
	}
	var res PullResult
	var more bool
	err = ep.call(ctx, func(ctx context.Context) error {
		var err error
		more, err = ep.Client.Search(ctx, rt, q, w.deps.Config.PullMaxPages, func(page []byte) error {
			return w.applyPage(ctx, ep, rt, page, &res)
		})
		return err
	})
	return more, err
}

type pulledResource struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Meta         struct {
		VersionID   string `json:"versionId"`
		LastUpdated string `json:"lastUpdated"`
		Tag         []struct {
			System string `json:"system"`
			Code   string `json:"code"`
		} `json:"tag"`
	} `json:"meta"`
}

// applyPage stores and maps one searchset page in one transaction and
// advances the cursor to the newest lastUpdated in it.
func (w *PullWorker) applyPage(ctx context.Context, ep *Endpoint, rt string, page []byte, res *PullResult) error {
	var b struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Resource json.RawMessage `json:"resource"`
			Search   struct {
				Mode string `json:"mode"`
			} `json:"search"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(page, &b); err != nil || b.ResourceType != "Bundle" {
		return &Error{Op: "search " + rt, Status: 200, Issues: []string{"page is not a Bundle"}}
	}
	return pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
		var newest *time.Time
		for _, e := range b.Entry {
			if e.Search.Mode == "include" || e.Search.Mode == "outcome" || len(e.Resource) == 0 {
				continue
			}
			var r pulledResource
			if err := json.Unmarshal(e.Resource, &r); err != nil || r.ResourceType != rt || r.ID == "" {
				continue
			}
			var lu *time.Time
			if t, err := time.Parse(time.RFC3339Nano, r.Meta.LastUpdated); err == nil {
				lu = &t
				if newest == nil || t.After(*newest) {
					newest = &t
				}
			}
			if err := w.applyEntry(ctx, tx, ep, r, e.Resource, lu, res); err != nil {
				return err
			}
		}
		if newest != nil {
			if err := w.q.FHIRPullCursorAdvance(ctx, tx, db.FHIRPullCursorAdvanceParams{EndpointID: ep.Row.ID, ResourceType: rt, Cursor: newest}); err != nil {
				return fmt.Errorf("error advancing cursor: %w", err)
			}
		}
		return nil
	})
}

// applyEntry applies one resource in a savepoint. A resource PostgreSQL
// cannot hold (a number beyond numeric such as 1e999999, a \u0000, text
// that is not UTF-8: SQLSTATE class 22) is skipped with a warning naming
// the SQLSTATE, not the content. Failing the page instead would retry it
// until the job dead-letters and hold the endpoint's cursor behind it.
func (w *PullWorker) applyEntry(ctx context.Context, tx pgx.Tx, ep *Endpoint, r pulledResource, raw []byte, lu *time.Time, res *PullResult) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	err = w.applyOne(ctx, sp, ep, r, raw, lu, res)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22") {
		if err := sp.Rollback(ctx); err != nil {
			return err
		}
		res.Unstorable++
		w.deps.Logger.WarnContext(ctx, "pulled resource skipped: PostgreSQL cannot store it",
			slog.String("endpoint", ep.Row.Name), slog.String("resource_type", r.ResourceType), slog.String("sqlstate", pgErr.Code))
		return nil
	}
	if err != nil {
		_ = sp.Rollback(ctx)
		return err
	}
	return sp.Commit(ctx)
}

func (w *PullWorker) applyOne(ctx context.Context, tx pgx.Tx, ep *Endpoint, r pulledResource, raw []byte, lu *time.Time, res *PullResult) error {
	version := r.Meta.VersionID
	if version == "" {
		h := sha256.Sum256(raw)
		version = "h:" + hex.EncodeToString(h[:])
	}
	state, reason := "ignored", ""
	var patientID *int64
	var apply func() error
	echo := false
	for _, t := range r.Meta.Tag {
		echo = echo || (t.System == ep.opts.Tag.System && t.Code == ep.opts.Tag.Code)
	}
	if !echo {
		l, err := w.q.FHIRLinkFindByResource(ctx, tx, db.FHIRLinkFindByResourceParams{EndpointID: ep.Row.ID,
			ResourceType: r.ResourceType, ResourceID: r.ID})
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("error finding the resource's link: %w", err)
		}
		echo = err == nil && l.VersionID != nil && *l.VersionID == version
	}
	switch {
	case echo:
		state = "echo"
	case r.ResourceType == "Patient":
		p, ok, err := w.matchPatient(ctx, tx, ep, raw)
		if err != nil {
			return err
		}
		if !ok {
			state, reason = "unmatched", "no local patient carries its identifier"
			break
		}
		state, patientID = "applied", &p.ID
		apply = func() error { return w.applyPatient(ctx, tx, p, raw) }
	case r.ResourceType == "Observation":
		pid, ok, err := w.observationPatient(ctx, tx, ep, raw)
		if err != nil {
			return err
		}
		if !ok {
			state, reason = "unmatched", "subject is not a matched patient"
			break
		}
		patientID = &pid
		kinds, err := w.kinds.Get(ctx)
		if err != nil {
			return err
		}
		obs, why := readObservation(raw, kinds)
		if why != "" {
			state, reason = "ignored", why
			break
		}
		state = "applied"
		apply = func() error { return w.applyObservations(ctx, tx, ep, pid, r.ID, obs) }
	}
	var rsn *string
	if reason != "" {
		rsn = &reason
	}
	inboundID, err := w.q.FHIRInboundInsert(ctx, tx, db.FHIRInboundInsertParams{EndpointID: ep.Row.ID, ResourceType: r.ResourceType,
		ResourceID: r.ID, VersionID: version, LastUpdated: lu, Raw: raw, State: state, Reason: rsn, PatientID: patientID})
	if errors.Is(err, pgx.ErrNoRows) {
		res.Duplicates++
		return nil // this version was already stored: dedupe
	}
	if err != nil {
		return fmt.Errorf("error storing pulled resource: %w", err)
	}
	res.Stored++
	switch state {
	case "echo":
		res.Echoes++
	case "unmatched":
		res.Unmatched++
	case "ignored":
		res.Ignored++
	case "applied":
		kind := "ehr.data_pulled"
		data := map[string]any{"endpoint": ep.Row.Name, "resource_type": r.ResourceType}
		var re *refusedError
		if err := apply(); errors.As(err, &re) {
			// Refused (implausible value, unit not allowed): kept as
			// quarantined with the reason, announced as rejected.
			if err := w.q.FHIRInboundQuarantine(ctx, tx, db.FHIRInboundQuarantineParams{ID: inboundID, Reason: re.reason}); err != nil {
				return fmt.Errorf("error quarantining pulled resource: %w", err)
			}
			res.Quarantined++
			kind, data["reason"] = "ehr.data_rejected", re.reason
		} else if err != nil {
			return err
		} else {
			res.Applied++
		}
		b, _ := json.Marshal(data)
		if _, err := w.q.EventEmit(ctx, tx, db.EventEmitParams{Kind: kind,
			Subject: fmt.Sprintf("patient/%d", *patientID), Data: b}); err != nil {
			return fmt.Errorf("error emitting event: %w", err)
		}
	}
	return nil
}

// matchPatient finds the local patient by business identifier only.
func (w *PullWorker) matchPatient(ctx context.Context, tx pgx.Tx, ep *Endpoint, raw []byte) (db.Patient, bool, error) {
	var r struct {
		Identifier []struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier"`
	}
	_ = json.Unmarshal(raw, &r)
	for _, id := range r.Identifier {
		if id.System != ep.opts.IdentifierSystem || id.Value == "" {
			continue
		}
		p, err := w.q.PatientGetByExternalRef(ctx, tx, externalRefOf(id.Value))
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return p, false, err
		}
		return p, true, nil
	}
	return db.Patient{}, false, nil
}

// observationPatient resolves the subject to a local patient: a Patient
// Switchboard pushed (fhir_links) or one pulled and matched by identifier.
func (w *PullWorker) observationPatient(ctx context.Context, tx pgx.Tx, ep *Endpoint, raw []byte) (int64, bool, error) {
	var r struct {
		Subject struct {
			Reference string `json:"reference"`
		} `json:"subject"`
	}
	_ = json.Unmarshal(raw, &r)
	ref := r.Subject.Reference
	if i := strings.Index(ref, "Patient/"); i >= 0 {
		ref = ref[i+len("Patient/"):]
	} else {
		return 0, false, nil
	}
	ref, _, _ = strings.Cut(ref, "/")
	l, err := w.q.FHIRLinkFindByResource(ctx, tx, db.FHIRLinkFindByResourceParams{EndpointID: ep.Row.ID, ResourceType: "Patient", ResourceID: ref})
	if err == nil && l.Entity == jobs.FHIREntityPatient {
		return l.EntityID, true, nil
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, false, err
	}
	pid, err := w.q.FHIRInboundMatchedPatient(ctx, tx, db.FHIRInboundMatchedPatientParams{EndpointID: ep.Row.ID, ResourceID: ref})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	return pid, err == nil, err
}

// applyPatient maps pulled demographics into the matched patient (never
// enqueuing a push).
func (w *PullWorker) applyPatient(ctx context.Context, tx pgx.Tx, p db.Patient, raw []byte) error {
	var r struct {
		Name []struct {
			Use    string   `json:"use"`
			Family string   `json:"family"`
			Given  []string `json:"given"`
		} `json:"name"`
		Gender    string `json:"gender"`
		BirthDate string `json:"birthDate"`
	}
	_ = json.Unmarshal(raw, &r)
	params := db.PatientApplyPulledParams{ID: p.ID}
	if len(r.Name) > 0 {
		n := r.Name[0]
		for _, x := range r.Name {
			if x.Use == "official" {
				n = x
				break
			}
		}
		if n.Family != "" {
			params.FamilyName = &n.Family
		}
		if len(n.Given) > 0 && n.Given[0] != "" {
			params.GivenName = &n.Given[0]
		}
	}
	if slices.Contains([]string{"male", "female", "other", "unknown"}, r.Gender) {
		params.Gender = &r.Gender
	}
	if t, err := time.Parse(time.DateOnly, r.BirthDate); err == nil {
		params.BirthDate.Time, params.BirthDate.Valid = t, true
	}
	if _, err := w.q.PatientApplyPulled(ctx, tx, params); err != nil {
		return fmt.Errorf("error applying pulled patient: %w", err)
	}
	return nil
}

type pulledObservation struct {
	kind       string
	code       string // the LOINC code it was read from
	value      string
	unit       string
	start, end time.Time
	// offset is the UTC offset (seconds) the EHR wrote the time in.
	offset *int32
}

type pulledQuantity struct {
	Value  json.Number `json:"value"`
	System string      `json:"system"`
	Code   string      `json:"code"`
}

type pulledCodeable struct {
	Coding []struct {
		System string `json:"system"`
		Code   string `json:"code"`
	} `json:"coding"`
}

// kind maps the concept to a kind by its LOINC codes: every code the
// vital-signs profiles allow for a mapped kind (SpO2 by pulse oximetry
// 59408-5 besides 2708-6).
func (c pulledCodeable) kind(kinds *obskind.Catalog) (string, string) {
	for _, cd := range c.Coding {
		if cd.System != SystemLOINC {
			continue
		}
		if k, ok := kindOfCode(kinds, cd.Code); ok {
			return k.Name, cd.Code
		}
	}
	return "", ""
}

func (c pulledCodeable) has(code string) bool {
	for _, cd := range c.Coding {
		if cd.System == SystemLOINC && cd.Code == code {
			return true
		}
	}
	return false
}

// readObservation maps a pulled Observation to kinds by its LOINC codes
// and UCUM units: one observation, or for a blood pressure panel (85354-9)
// one per mapped component. The reason is set when it cannot be mapped.
func readObservation(raw []byte, kinds *obskind.Catalog) ([]pulledObservation, string) {
	var r struct {
		Status            string         `json:"status"`
		Code              pulledCodeable `json:"code"`
		EffectiveDateTime string         `json:"effectiveDateTime"`
		EffectivePeriod   *struct {
			Start string `json:"start"`
			End   string `json:"end"`
		} `json:"effectivePeriod"`
		ValueQuantity *pulledQuantity `json:"valueQuantity"`
		Component     []struct {
			Code          pulledCodeable  `json:"code"`
			ValueQuantity *pulledQuantity `json:"valueQuantity"`
		} `json:"component"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&r) != nil {
		return nil, "not parseable"
	}
	if r.Status != "final" && r.Status != "amended" && r.Status != "corrected" {
		return nil, "status not final"
	}
	var base pulledObservation
	var err error
	switch {
	case r.EffectiveDateTime != "":
		base.start, err = time.Parse(time.RFC3339Nano, r.EffectiveDateTime)
	case r.EffectivePeriod != nil:
		base.start, err = time.Parse(time.RFC3339Nano, r.EffectivePeriod.Start)
		if err == nil && r.EffectivePeriod.End != "" {
			base.end, err = time.Parse(time.RFC3339Nano, r.EffectivePeriod.End)
		}
	default:
		return nil, "no effective time"
	}
	if err != nil {
		return nil, "effective time is not an instant"
	}
	// The offset the EHR wrote the start in ("Z" parses as offset 0).
	_, off := base.start.Zone()
	base.offset = ptr(int32(off))
	quantity := func(kind, code string, q *pulledQuantity) (pulledObservation, string) {
		o := base
		o.kind, o.code = kind, code
		if q == nil || q.System != SystemUCUM || q.Code == "" || q.Value == "" {
			return o, "no UCUM valueQuantity"
		}
		o.value, o.unit = q.Value.String(), q.Code
		return o, ""
	}
	if r.Code.has(LOINCBloodPressurePanel) {
		var out []pulledObservation
		for _, c := range r.Component {
			kind, code := c.Code.kind(kinds)
			if kind == "" {
				continue
			}
			o, why := quantity(kind, code, c.ValueQuantity)
			if why != "" {
				return nil, "component " + code + ": " + why
			}
			out = append(out, o)
		}
		if len(out) == 0 {
			return nil, "blood pressure panel without a mapped component"
		}
		return out, ""
	}
	kind, code := r.Code.kind(kinds)
	if kind == "" {
		return nil, "no mapped LOINC code"
	}
	o, why := quantity(kind, code, r.ValueQuantity)
	if why != "" {
		return nil, why
	}
	return []pulledObservation{o}, ""
}

// applyObservations records the observations read from one pulled
// resource (one, or a blood pressure panel's components) with source
// ehr:<endpoint> (never pushed back) and the UTC offset the EHR wrote,
// through record_observation, all or none in one savepoint. A value
// record_observation refuses (22023: outside the plausible range, a unit
// not allowed) stores none of them: a *refusedError with its reason is
// returned for the caller to quarantine the resource, so a panel is never
// stored as half a reading.
func (w *PullWorker) applyObservations(ctx context.Context, tx pgx.Tx, ep *Endpoint, patientID int64, resourceID string, obs []pulledObservation) error {
	p, err := w.q.PatientGet(ctx, tx, patientID)
	if err != nil {
		return err
	}
	sp, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	for _, o := range obs {
		var end any
		if !o.end.IsZero() {
			end = o.end
		}
		sourceID := "Observation/" + resourceID
		if o.code == LOINCSystolic || o.code == LOINCDiastolic {
			sourceID += "#" + o.code // a panel's components are one observation each
		}
		var id int64
		err = sp.QueryRow(ctx, "SELECT switchboard.record_observation($1, $2, $3::numeric, $4, $5, $6, $7, $8, NULL, $9)",
			p.ExternalRef, o.kind, o.value, o.unit, o.start, end, "ehr:"+ep.Row.Name, sourceID, o.offset).Scan(&id)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "22023" || pgErr.Code == "23505") {
			// The message names the rule and the kind's range, never the value.
			if err := sp.Rollback(ctx); err != nil {
				return err
			}
			return &refusedError{reason: pgErr.Message}
		}
		if err != nil {
			_ = sp.Rollback(ctx)
			return fmt.Errorf("error recording pulled observation: %w", err)
		}
	}
	return sp.Commit(ctx)
}

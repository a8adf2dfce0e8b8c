package fhir_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/fhir"
	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/jobs"
)

type testBundle struct {
	ctx      context.Context
	pool     *pgxpool.Pool
	base     string // this test's proxy in front of the shared peer
	peerBase string // the shared peer itself
	proxy    *peerProxy
	system   string
	endpoint db.EHREndpoint
	push     *fhir.PushWorker
	pull     *fhir.PullWorker
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// setup gives each test its own database, endpoint and identifier system on
// the shared FHIR peer.
func setup(t *testing.T, cfg fhir.Config) *testBundle {
	t.Helper()
	pool, _ := dbtest.NewPool(t)
	return setupOn(t, cfg, pool)
}

// setupOn is setup on a pool of the test's own (one with a query tracer).
func setupOn(t *testing.T, cfg fhir.Config, pool *pgxpool.Pool) *testBundle {
	t.Helper()
	peerBase := peer(t)
	proxy := newPeerProxy(t, peerBase)
	base := proxy.base
	ctx := context.Background()
	b := &testBundle{ctx: ctx, pool: pool, base: base, peerBase: peerBase, proxy: proxy,
		system: "https://switchboard-tests.test/fhir/identifier/" + randHex(6)}
	ep, err := db.New().EHREndpointInsert(ctx, pool, db.EHREndpointInsertParams{
		Name: "medplum", BaseUrl: base, AuthKind: "none",
		PushTypes: []string{"Patient", "Observation", "Device", "Communication", "Consent"}, PullTypes: []string{"Patient", "Observation"},
		IdentifierSystem: &b.system, PullInterval: pgtype.Interval{Microseconds: int64(time.Minute / time.Microsecond), Valid: true},
	})
	require.NoError(t, err)
	b.endpoint = ep
	deps := fhir.Deps{Pool: pool, Registry: resilience.New(nil), Config: cfg}
	b.push, err = fhir.NewPushWorker(deps)
	require.NoError(t, err)
	b.pull, err = fhir.NewPullWorker(deps)
	require.NoError(t, err)
	return b
}

func (b *testBundle) tx(t *testing.T, fn func(tx pgx.Tx) error) {
	t.Helper()
	require.NoError(t, pgx.BeginFunc(b.ctx, b.pool, fn))
}

func (b *testBundle) patient(t *testing.T, p jobs.UpsertPatientParams) int64 {
	var id int64
	b.tx(t, func(tx pgx.Tx) error {
		var err error
		id, err = jobs.UpsertPatient(b.ctx, tx, p)
		return err
	})
	return id
}

func (b *testBundle) runPush(t *testing.T, entity string, id int64) error {
	t.Helper()
	job := &river.Job[jobs.FHIRPushArgs]{JobRow: &rivertype.JobRow{ID: 1, Attempt: 1, Metadata: []byte(`{}`)},
		Args: jobs.FHIRPushArgs{EndpointID: b.endpoint.ID, Entity: entity, EntityID: id}}
	return b.push.Work(b.ctx, job)
}

func (b *testBundle) runPull(t *testing.T, rt string) error {
	t.Helper()
	job := &river.Job[jobs.FHIRPullArgs]{JobRow: &rivertype.JobRow{ID: 1, Attempt: 1, Metadata: []byte(`{}`)},
		Args: jobs.FHIRPullArgs{EndpointID: b.endpoint.ID, ResourceType: rt}}
	return b.pull.Work(b.ctx, job)
}

// fhirDo talks to the peer directly, as another EHR client would.
func fhirDo(t *testing.T, method, u string, body any, header map[string]string) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		bs, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(bs)
	}
	req, err := http.NewRequest(method, u, rd)
	require.NoError(t, err)
	req.Header.Set("Content-Type", fhir.MediaType)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, resp.Header
}

func (b *testBundle) search(t *testing.T, rt, query string) []map[string]any {
	t.Helper()
	status, bundle, _ := fhirDo(t, "GET", b.base+"/"+rt+"?"+query, nil, nil)
	require.Equal(t, 200, status)
	var out []map[string]any
	for _, e := range bundle["entry"].([]any) {
		out = append(out, e.(map[string]any)["resource"].(map[string]any))
	}
	return out
}

func (b *testBundle) byIdentifier(t *testing.T, rt, value string) []map[string]any {
	t.Helper()
	status, bundle, _ := fhirDo(t, "GET", b.base+"/"+rt+"?identifier="+url.QueryEscape(b.system+"|"+value), nil, nil)
	require.Equal(t, 200, status)
	var out []map[string]any
	if entries, ok := bundle["entry"].([]any); ok {
		for _, e := range entries {
			out = append(out, e.(map[string]any)["resource"].(map[string]any))
		}
	}
	return out
}

func (b *testBundle) link(t *testing.T, entity string, id int64) db.FHIRLink {
	t.Helper()
	l, err := db.New().FHIRLinkGet(b.ctx, b.pool, db.FHIRLinkGetParams{EndpointID: b.endpoint.ID, Entity: entity, EntityID: id})
	require.NoError(t, err)
	return l
}

func requireCancelled(t *testing.T, err error) *rivertype.JobCancelError {
	t.Helper()
	var ce *rivertype.JobCancelError
	require.ErrorAs(t, err, &ce)
	return ce
}

func TestPushPatientAgainstRealServer(t *testing.T) {
	t.Parallel()
	b := setup(t, fhir.Config{})
	id := b.patient(t, jobs.UpsertPatientParams{ExternalRef: "ref-" + randHex(4), GivenName: "Ana", FamilyName: "Smith", Gender: "female", PhoneE164: "+15005550006"})
	p, err := db.New().PatientGet(b.ctx, b.pool, id)
	require.NoError(t, err)

	t.Run("NewPatientIsCreated", func(t *testing.T) {
		require.NoError(t, b.runPush(t, "patient", id))
		found := b.byIdentifier(t, "Patient", p.ExternalRef)
		require.Len(t, found, 1)
		require.Equal(t, "Smith", found[0]["name"].([]any)[0].(map[string]any)["family"])
		l := b.link(t, "patient", id)
		require.Equal(t, found[0]["id"], l.ResourceID)
		require.Equal(t, found[0]["meta"].(map[string]any)["versionId"], *l.VersionID)
	})

	t.Run("PushedAgainNoDuplicateNoRequest", func(t *testing.T) {
		before := b.proxy.requests()
		require.NoError(t, b.runPush(t, "patient", id))
		require.Equal(t, before, b.proxy.requests(), "unchanged content is not sent")
		require.Len(t, b.byIdentifier(t, "Patient", p.ExternalRef), 1)
	})

	t.Run("LostLinkDoesNotDuplicate", func(t *testing.T) {
		_, err := b.pool.Exec(b.ctx, "DELETE FROM switchboard.fhir_links WHERE entity = 'patient' AND entity_id = $1", id)
		require.NoError(t, err)
		require.NoError(t, b.runPush(t, "patient", id))
		require.Len(t, b.byIdentifier(t, "Patient", p.ExternalRef), 1, "the conditional create matched the existing one")
	})

	t.Run("ChangeIsAnUpdateWithIfMatch", func(t *testing.T) {
		old := b.link(t, "patient", id)
		b.patient(t, jobs.UpsertPatientParams{ExternalRef: p.ExternalRef, FamilyName: "Smith-Jones"})
		require.NoError(t, b.runPush(t, "patient", id))
		l := b.link(t, "patient", id)
		require.Equal(t, old.ResourceID, l.ResourceID)
		require.NotEqual(t, *old.VersionID, *l.VersionID)
		status, r, h := fhirDo(t, "GET", b.base+"/Patient/"+l.ResourceID, nil, nil)
		require.Equal(t, 200, status)
		require.Equal(t, "Smith-Jones", r["name"].([]any)[0].(map[string]any)["family"])
		require.Equal(t, fhir.ETag(*l.VersionID), h.Get("ETag"))
	})

	t.Run("ConcurrentChangeOnServerIs412ReReadReApplied", func(t *testing.T) {
		l := b.link(t, "patient", id)
		_, cur, _ := fhirDo(t, "GET", b.base+"/Patient/"+l.ResourceID, nil, nil)
		cur["birthDate"] = "1970-01-01"
		status, _, _ := fhirDo(t, "PUT", b.base+"/Patient/"+l.ResourceID, cur, nil)
		require.Equal(t, 200, status, "someone else updated it")
		// Our stored version is now stale: the update gets 412 and must
		// re-read and re-apply.
		status, _, _ = fhirDo(t, "PUT", b.base+"/Patient/"+l.ResourceID, cur, map[string]string{"If-Match": fhir.ETag(*l.VersionID)})
		require.Equal(t, 412, status, "the peer enforces If-Match")
		b.patient(t, jobs.UpsertPatientParams{ExternalRef: p.ExternalRef, GivenName: "Anna"})
		require.NoError(t, b.runPush(t, "patient", id))
		_, r, _ := fhirDo(t, "GET", b.base+"/Patient/"+l.ResourceID, nil, nil)
		require.Equal(t, []any{"Anna"}, r["name"].([]any)[0].(map[string]any)["given"])
		require.Equal(t, r["meta"].(map[string]any)["versionId"], *b.link(t, "patient", id).VersionID)
	})

	t.Run("SeveralMatchesOnTheServerIsPermanent", func(t *testing.T) {
		ref := "dup-" + randHex(4)
		for i := 0; i < 2; i++ {
			status, _, _ := fhirDo(t, "POST", b.base+"/Patient", map[string]any{"resourceType": "Patient",
				"identifier": []any{map[string]any{"system": b.system, "value": ref}}}, nil)
			require.Equal(t, 201, status)
		}
		dup := b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, FamilyName: "Twice"})
		err := b.runPush(t, "patient", dup)
		ce := requireCancelled(t, err)
		require.Equal(t, fhir.ClassDuplicate, fhir.Classify(ce.Unwrap(), 1))
		require.Contains(t, err.Error(), "HTTP 412")
	})
}

func TestPushInvalidResourceIsNeverSent(t *testing.T) {
	t.Parallel()
	b := setup(t, fhir.Config{})
	var id int64
	b.tx(t, func(tx pgx.Tx) error {
		var err error
		id, err = jobs.PushFHIR(b.ctx, tx, json.RawMessage(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"secret value","valueBoolean":true}`),
			&jobs.PushFHIROpts{EndpointName: "medplum"})
		return err
	})
	before := b.proxy.requests()
	err := b.runPush(t, "outbound", id)
	requireCancelled(t, err)
	require.Contains(t, err.Error(), "Observation.value[x]")
	require.NotContains(t, err.Error(), "secret value", "no values in job errors")
	require.Equal(t, before, b.proxy.requests(), "nothing was sent")

	t.Run("ValidAppResourceIsPushedWithOurIdentifier", func(t *testing.T) {
		var ok int64
		b.tx(t, func(tx pgx.Tx) error {
			var err error
			ok, err = jobs.PushFHIR(b.ctx, tx, map[string]any{"resourceType": "Organization", "name": "Clinic Ærø"}, nil)
			return err
		})
		// Organization is not in the endpoint's push types: no job, but an
		// explicit push works.
		require.NoError(t, b.runPush(t, "outbound", ok))
		require.Len(t, b.byIdentifier(t, "Organization", fmt.Sprintf("outbound-%d", ok)), 1)
	})
}

func TestPushObservationsWithTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t, fhir.Config{})
	ref := "obs-" + randHex(4)
	pid := b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, GivenName: "Zoë", FamilyName: "Łukasiewicz"})
	dev, err := db.New().DeviceUpsert(b.ctx, b.pool, db.DeviceUpsertParams{PatientID: pid, Source: "google_health", ExternalID: "w1",
		Manufacturer: ptr("Google"), Model: ptr("Pixel Watch")})
	require.NoError(t, err)
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	var steps, hr int64
	b.tx(t, func(tx pgx.Tx) error {
		var err error
		steps, err = jobs.RecordObservation(b.ctx, tx, jobs.RecordObservationParams{PatientExternalRef: ref, Kind: "steps", Value: 9000,
			Unit: "/d", EffectiveStart: at.Add(-23 * time.Hour), EffectiveEnd: at, Source: "google_health", SourceID: "s1", DeviceID: dev})
		if err != nil {
			return err
		}
		hr, err = jobs.RecordObservation(b.ctx, tx, jobs.RecordObservationParams{PatientExternalRef: ref, Kind: "heart_rate", Value: 61,
			Unit: "/min", EffectiveStart: at})
		return err
	})

	// The patient is not on the server yet: patient, device and
	// observation go in one transaction, the patient first.
	require.NoError(t, b.runPush(t, "observation", steps))
	pl := b.link(t, "patient", pid)
	dl := b.link(t, "device", dev)
	ol := b.link(t, "observation", steps)
	_, obs, _ := fhirDo(t, "GET", b.base+"/Observation/"+ol.ResourceID, nil, nil)
	require.Equal(t, "Patient/"+pl.ResourceID, obs["subject"].(map[string]any)["reference"])
	require.Equal(t, "Device/"+dl.ResourceID, obs["device"].(map[string]any)["reference"])
	require.Len(t, b.byIdentifier(t, "Patient", ref), 1)

	// The patient is linked now: the next one is a plain conditional create.
	require.NoError(t, b.runPush(t, "observation", hr))
	found := b.byIdentifier(t, "Observation", fmt.Sprintf("observation-%d", hr))
	require.Len(t, found, 1)
	require.Equal(t, "Patient/"+pl.ResourceID, found[0]["subject"].(map[string]any)["reference"])
	require.Nil(t, found[0]["device"], "observation without device")

	t.Run("RetriedTransactionDoesNotDuplicate", func(t *testing.T) {
		_, err := b.pool.Exec(b.ctx, "DELETE FROM switchboard.fhir_links WHERE endpoint_id = $1", b.endpoint.ID)
		require.NoError(t, err)
		require.NoError(t, b.runPush(t, "observation", steps))
		require.Len(t, b.byIdentifier(t, "Patient", ref), 1)
		require.Len(t, b.byIdentifier(t, "Observation", fmt.Sprintf("observation-%d", steps)), 1)
		require.Len(t, b.byIdentifier(t, "Device", fmt.Sprintf("device-%d", dev)), 1)
	})

	t.Run("ThrottledSnoozes", func(t *testing.T) {
		status, _, _ := fhirDo(t, "POST", b.base+"/$fault", map[string]any{"path": "Observation/" + ol.ResourceID,
			"status": 429, "retryAfter": 7, "times": 1}, nil)
		require.Equal(t, 200, status)
		b.tx(t, func(tx pgx.Tx) error {
			_, err := jobs.RecordObservation(b.ctx, tx, jobs.RecordObservationParams{PatientExternalRef: ref, Kind: "steps", Value: 9500,
				Unit: "/d", EffectiveStart: at.Add(-23 * time.Hour), EffectiveEnd: at, Source: "google_health", SourceID: "s1", DeviceID: dev})
			return err
		})
		err := b.runPush(t, "observation", steps)
		var se *rivertype.JobSnoozeError
		require.ErrorAs(t, err, &se)
		require.Equal(t, 7*time.Second, se.Duration)
		require.NoError(t, b.runPush(t, "observation", steps))
	})
}

func TestPullAgainstRealServer(t *testing.T) {
	t.Parallel()
	b := setup(t, fhir.Config{PullPageSize: 3})
	ref := "pull-" + randHex(4)
	pid := b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, FamilyName: "Original"})
	var mine int64
	b.tx(t, func(tx pgx.Tx) error {
		var err error
		mine, err = jobs.RecordObservation(b.ctx, tx, jobs.RecordObservationParams{PatientExternalRef: ref, Kind: "weight", Value: 70,
			Unit: "kg", EffectiveStart: time.Now().Add(-time.Hour)})
		return err
	})
	require.NoError(t, b.runPush(t, "observation", mine))
	pl := b.link(t, "patient", pid)

	// The EHR changes the patient and records observations of its own:
	// seven of them, across three pages of three.
	_, cur, _ := fhirDo(t, "GET", b.base+"/Patient/"+pl.ResourceID, nil, nil)
	cur["name"] = []any{map[string]any{"use": "official", "family": "Changed", "given": []any{"Émile"}}}
	delete(cur, "meta")
	status, _, _ := fhirDo(t, "PUT", b.base+"/Patient/"+pl.ResourceID, cur, nil)
	require.Equal(t, 200, status)
	for i := 0; i < 7; i++ {
		status, _, _ := fhirDo(t, "POST", b.base+"/Observation", map[string]any{"resourceType": "Observation", "status": "final",
			"code":              map[string]any{"coding": []any{map[string]any{"system": fhir.SystemLOINC, "code": "8867-4"}}},
			"subject":           map[string]any{"reference": "Patient/" + pl.ResourceID},
			"effectiveDateTime": time.Now().Add(-time.Duration(i) * time.Minute).UTC().Format(time.RFC3339),
			"valueQuantity":     map[string]any{"value": 60 + i, "unit": "/min", "system": fhir.SystemUCUM, "code": "/min"}}, nil)
		require.Equal(t, 201, status)
	}
	// An unknown patient: held for review, never matched by demographics.
	status, stranger, _ := fhirDo(t, "POST", b.base+"/Patient", map[string]any{"resourceType": "Patient",
		"name": []any{map[string]any{"family": "Changed", "given": []any{"Émile"}}}}, nil)
	require.Equal(t, 201, status)

	require.NoError(t, b.runPull(t, "Patient"))
	require.NoError(t, b.runPull(t, "Observation"))

	p, err := db.New().PatientGet(b.ctx, b.pool, pid)
	require.NoError(t, err)
	require.Equal(t, "Changed", *p.FamilyName)
	require.Equal(t, "Émile", *p.GivenName)

	var pulled int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM switchboard.observations WHERE patient_id = $1 AND source = 'ehr:medplum'`, pid).Scan(&pulled))
	require.Equal(t, 7, pulled, "all seven across pages")

	var state string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT state FROM switchboard.fhir_inbound WHERE resource_type = 'Observation' AND resource_id = $1`,
		b.link(t, "observation", mine).ResourceID).Scan(&state))
	require.Equal(t, "echo", state, "our own write is skipped")
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT state FROM switchboard.fhir_inbound WHERE resource_type = 'Patient' AND resource_id = $1`,
		stranger["id"]).Scan(&state))
	require.Equal(t, "unmatched", state)

	var cursor time.Time
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT cursor FROM switchboard.fhir_pull_cursors WHERE endpoint_id = $1 AND resource_type = 'Observation'`,
		b.endpoint.ID).Scan(&cursor))
	require.WithinDuration(t, time.Now(), cursor, time.Hour, "cursor advanced to the newest lastUpdated")

	var events int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM switchboard.events WHERE kind = 'ehr.data_pulled' AND subject = $1`,
		fmt.Sprintf("patient/%d", pid)).Scan(&events))
	require.Equal(t, 8, events)

	t.Run("PullingAgainStoresNothingNew", func(t *testing.T) {
		var before, newest int64
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*), coalesce(max(id), 0) FROM switchboard.fhir_inbound`).Scan(&before, &newest))
		// The server is shared, as an EHR is: meanwhile someone else records
		// an Observation. The pull stores that one; of what it had already
		// pulled it stores nothing again.
		status, other, _ := fhirDo(t, "POST", b.base+"/Observation", map[string]any{"resourceType": "Observation", "status": "final",
			"code":              map[string]any{"coding": []any{map[string]any{"system": fhir.SystemLOINC, "code": "8867-4"}}},
			"effectiveDateTime": time.Now().UTC().Format(time.RFC3339),
			"valueQuantity":     map[string]any{"value": 61, "unit": "/min", "system": fhir.SystemUCUM, "code": "/min"}}, nil)
		require.Equal(t, 201, status)
		require.NoError(t, b.runPull(t, "Observation"))
		var again int64
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM switchboard.fhir_inbound f WHERE EXISTS (
			SELECT 1 FROM switchboard.fhir_inbound g WHERE g.id <= $1 AND g.resource_type = f.resource_type AND g.resource_id = f.resource_id)`,
			newest).Scan(&again))
		require.Equal(t, before, again, "dedupe on (type, id, versionId) within the overlap window")
		var stored int
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM switchboard.fhir_inbound WHERE id > $1 AND resource_type = 'Observation' AND resource_id = $2`,
			newest, other["id"]).Scan(&stored))
		require.Equal(t, 1, stored, "what changed on the server meanwhile is pulled")
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM switchboard.observations WHERE patient_id = $1 AND source = 'ehr:medplum'`, pid).Scan(&pulled))
		require.Equal(t, 7, pulled)
	})

	t.Run("PulledObservationsAreNeverPushedBack", func(t *testing.T) {
		var n int
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM switchboard.river_job j JOIN switchboard.observations o
			ON o.id = (j.args->>'entity_id')::bigint WHERE j.kind = 'fhir_push' AND j.args->>'entity' = 'observation' AND o.source LIKE 'ehr:%'`).Scan(&n))
		require.Zero(t, n)
	})
}

func TestSearchRefusesNextLinkOffOrigin(t *testing.T) {
	t.Parallel()
	srv := newJSONServer(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"next","url":"http://evil.example/fhir/Patient?page=2"}]}`)
	})
	c, err := fhir.NewClient(srv+"/fhir", nil, nil)
	require.NoError(t, err)
	pages := 0
	_, err = c.Search(context.Background(), "Patient", url.Values{}, 10, func([]byte) error { pages++; return nil })
	var oe *fhir.OriginError
	require.ErrorAs(t, err, &oe)
	require.Equal(t, 1, pages)
	require.Equal(t, fhir.ClassPermanent, fhir.Classify(err, 1))
}

func TestClassify(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err  error
		want fhir.Class
	}{
		{&fhir.Error{Status: 0}, fhir.ClassRetryable},
		{&fhir.Error{Status: 429}, fhir.ClassThrottled},
		{&fhir.Error{Status: 502}, fhir.ClassRetryable},
		{&fhir.Error{Status: 503}, fhir.ClassRetryable},
		{&fhir.Error{Status: 504}, fhir.ClassRetryable},
		{&fhir.Error{Status: 412}, fhir.ClassStale},
		{&fhir.Error{Status: 409}, fhir.ClassStale},
		{&fhir.Error{Status: 412, Conditional: true}, fhir.ClassDuplicate},
		{&fhir.Error{Status: 401}, fhir.ClassAuth},
		{&fhir.Error{Status: 400}, fhir.ClassPermanent},
		{&fhir.Error{Status: 422}, fhir.ClassPermanent},
		{&fhir.Error{Status: 404}, fhir.ClassPermanent},
		{&fhir.Error{Status: 410}, fhir.ClassPermanent},
		{&fhir.ValidationError{}, fhir.ClassPermanent},
	}
	for _, c := range cases {
		require.Equal(t, c.want, fhir.Classify(c.err, 1), c.err.Error())
	}
	require.Equal(t, fhir.ClassRetryable, fhir.Classify(&fhir.Error{Status: 500}, 1))
	require.Equal(t, fhir.ClassPermanent, fhir.Classify(&fhir.Error{Status: 500}, 4), "500: a few times, then dead letter")
}

func TestOperationOutcomeCarriesNoValues(t *testing.T) {
	t.Parallel()
	srv := newJSONServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(422)
		fmt.Fprint(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","details":{"text":"Smith is not valid"},
			"diagnostics":"value 'Smith' for Patient.name[0].family; phone +1 500 555 0006 born 1970-01-01 mail ana@x.example","expression":["Patient.name[0].family"]}]}`)
	})
	c, err := fhir.NewClient(srv, nil, nil)
	require.NoError(t, err)
	body := `{"resourceType":"Patient","name":[{"family":"Smith"}],"telecom":[{"system":"phone","value":"+15005550006"}],"birthDate":"1970-01-01"}`
	_, err = c.ConditionalCreate(context.Background(), "Patient", fhir.Identifier{System: "s", Value: "v"}, []byte(body))
	require.Error(t, err)
	require.Contains(t, err.Error(), "error/invalid at Patient.name[0].family")
	require.Contains(t, err.Error(), "is not valid", "the server's wording is kept")
	require.Contains(t, err.Error(), "for Patient.name[0].family; phone", "diagnostics kept, element indexes intact")
	for _, v := range []string{"Smith", "555", "0006", "1970", "ana@"} {
		require.NotContains(t, err.Error(), v)
	}
}

func ptr[T any](v T) *T { return &v }

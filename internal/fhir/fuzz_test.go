package fhir_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/fhir"
	"github.com/switchboard-health/switchboard/jobs"
)

// fuzzSystem is the identifier system of FuzzPull's endpoint; fuzzRef is
// the local patient it knows as Patient/fz-1 and by identifier.
const (
	fuzzSystem = "https://switchboard-tests.test/fhir/identifier/fuzz"
	fuzzRef    = "fuzz-patient"
)

// FuzzPull serves a fuzzed searchset page to a real pull (PullWorker.Work:
// the FHIR client, page parsing, patient matching, observation mapping and
// record_observation in a real database). A page is stored and mapped, or
// the pull fails with a FHIR error (page not a Bundle, next link off the
// endpoint's origin); a resource it cannot use is kept with a reason. It
// never fails with a database error (which would retry the same page until
// the job dead-letters and stall the endpoint's cursor behind it), and a
// page that is not a Bundle writes nothing. Seeds: testdata/fuzz/FuzzPull.
func FuzzPull(f *testing.F) {
	obs := func(value string) []byte {
		return []byte(`{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Observation","id":"o1",
			"meta":{"lastUpdated":"2020-01-02T03:04:05Z"},"status":"final",
			"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/fz-1"},
			"effectiveDateTime":"2020-01-02T03:04:05+02:00","valueQuantity":{"value":` + value + `,"system":"http://unitsofmeasure.org","code":"/min"}}}]}`)
	}
	f.Add(true, obs("72"))
	f.Add(true, obs("72.50"))
	f.Add(true, obs("4000"))
	f.Add(true, []byte(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation","id":"bp1","status":"final",
		"code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"subject":{"reference":"Patient/fz-1"},
		"effectivePeriod":{"start":"2020-01-02T03:04:05Z","end":"2020-01-02T03:05:05Z"},
		"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
		{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}}]}`))
	f.Add(false, []byte(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"fz-1","meta":{"versionId":"2"},
		"identifier":[{"system":"`+fuzzSystem+`","value":"`+fuzzRef+`"}],"name":[{"use":"official","family":"Fuzz","given":["Pat"]}],
		"gender":"other","birthDate":"1980-01-01"}}]}`))
	f.Add(false, []byte(`{"resourceType":"Bundle","link":[{"relation":"next","url":"http://elsewhere.invalid/Patient?page=2"}],"entry":[]}`))
	f.Add(true, []byte(`{"resourceType":"OperationOutcome"}`))
	f.Add(true, []byte(`not json`))

	fx := newServedPull(f)

	rc := dbtest.NewRowCounter(f, fx.pool)

	f.Fuzz(func(t *testing.T, observations bool, body []byte) {
		fx.page.Store(&body)
		rt := "Patient"
		if observations {
			rt = "Observation"
		}
		before := rc.Count(t)
		err := fx.pull(t, rt)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			t.Fatalf("a pulled page failed the pull with a database error (%s %s): the page would be retried until the job dead-letters", pgErr.Code, pgErr.Message)
		}
		var fe *fhir.Error
		var oe *fhir.OriginError
		if err != nil && !errors.As(err, &fe) && !errors.As(err, &oe) {
			t.Fatalf("pull failed with neither a FHIR error nor a refused next link: %v", err)
		}
		var b struct {
			ResourceType string `json:"resourceType"`
		}
		if json.Unmarshal(body, &b) != nil || b.ResourceType != "Bundle" {
			if err == nil {
				t.Fatal("a page that is not a Bundle was accepted")
			}
			if changed := rc.Changed(before, rc.Count(t)); changed != "" {
				t.Fatalf("a page that is not a Bundle wrote rows: %s", changed)
			}
		}
	})
}

// servedPull is an endpoint served by an in-process server that answers
// every search with page, and a local patient it knows as Patient/fz-1.
type servedPull struct {
	pool       *pgxpool.Pool
	endpointID int64
	page       *atomic.Pointer[[]byte]
}

func newServedPull(tb testing.TB) servedPull {
	tb.Helper()
	pool, _ := dbtest.NewPool(tb)
	ctx := context.Background()
	page := new(atomic.Pointer[[]byte])
	base := newJSONServer(tb, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metadata" {
			_, _ = w.Write([]byte(`{"resourceType":"CapabilityStatement","fhirVersion":"4.0.1","rest":[{"mode":"server","resource":[
				{"type":"Patient","interaction":[{"code":"search-type"}]},{"type":"Observation","interaction":[{"code":"search-type"}]}]}]}`))
			return
		}
		_, _ = w.Write(*page.Load())
	})
	system := fuzzSystem
	ep, err := db.New().EHREndpointInsert(ctx, pool, db.EHREndpointInsertParams{Name: "fuzz", BaseUrl: base, AuthKind: "none",
		PushTypes: []string{}, PullTypes: []string{"Patient", "Observation"}, IdentifierSystem: &system,
		PullInterval: pgtype.Interval{Microseconds: int64(time.Minute / time.Microsecond), Valid: true}})
	if err != nil {
		tb.Fatal(err)
	}
	var pid int64
	if err := pool.QueryRow(ctx, "SELECT switchboard.upsert_patient($1, 'Fuzz', 'Patient', 'other', DATE '1980-01-01')", fuzzRef).Scan(&pid); err != nil {
		tb.Fatal(err)
	}
	if err := db.New().FHIRLinkUpsert(ctx, pool, db.FHIRLinkUpsertParams{EndpointID: ep.ID, Entity: jobs.FHIREntityPatient, EntityID: pid,
		ResourceType: "Patient", ResourceID: "fz-1"}); err != nil {
		tb.Fatal(err)
	}
	return servedPull{pool: pool, endpointID: ep.ID, page: page}
}

// pull runs one fhir_pull job of resource type rt with a fresh worker:
// breakers and cached endpoints would otherwise turn later fuzz inputs
// into snoozes that parse nothing.
func (s servedPull) pull(tb testing.TB, rt string) error {
	tb.Helper()
	w, err := fhir.NewPullWorker(fhir.Deps{Pool: s.pool, Config: fhir.Config{PullMaxPages: 2}})
	if err != nil {
		tb.Fatal(err)
	}
	return w.Work(context.Background(), &river.Job[jobs.FHIRPullArgs]{JobRow: &rivertype.JobRow{ID: 1, Attempt: 1, Metadata: []byte(`{}`)},
		Args: jobs.FHIRPullArgs{EndpointID: s.endpointID, ResourceType: rt}})
}

// TestPullSkipsAResourcePostgreSQLCannotStore: one Observation whose value
// numeric cannot hold (1e999999; jsonb refuses it too) is skipped, and the
// rest of its page is stored and applied, instead of the whole page
// failing on every retry until the job dead-letters.
func TestPullSkipsAResourcePostgreSQLCannotStore(t *testing.T) {
	t.Parallel()
	fx := newServedPull(t)
	page := []byte(`{"resourceType":"Bundle","entry":[` +
		`{"resource":{"resourceType":"Observation","id":"big","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},` +
		`"subject":{"reference":"Patient/fz-1"},"effectiveDateTime":"2020-01-02T03:04:05Z","valueQuantity":{"value":1e999999,"system":"http://unitsofmeasure.org","code":"/min"}}},` +
		`{"resource":{"resourceType":"Observation","id":"ok","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},` +
		`"subject":{"reference":"Patient/fz-1"},"effectiveDateTime":"2020-01-02T03:04:05Z","valueQuantity":{"value":61,"system":"http://unitsofmeasure.org","code":"/min"}}}]}`)
	fx.page.Store(&page)
	require.NoError(t, fx.pull(t, "Observation"))
	var inbound []string
	rows, err := fx.pool.Query(context.Background(), "SELECT resource_id || ':' || state FROM switchboard.fhir_inbound ORDER BY id")
	require.NoError(t, err)
	inbound, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"ok:applied"}, inbound)
	var sourceIDs []string
	rows, err = fx.pool.Query(context.Background(), "SELECT source_id FROM switchboard.observations WHERE source = 'ehr:fuzz'")
	require.NoError(t, err)
	sourceIDs, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"Observation/ok"}, sourceIDs)
}

// FuzzParseCapabilities: any CapabilityStatement an endpoint answers is
// summarised or refused with an error; never a panic.
func FuzzParseCapabilities(f *testing.F) {
	f.Add([]byte(`{"resourceType":"CapabilityStatement","fhirVersion":"4.0.1","rest":[{"mode":"server","resource":[{"type":"Patient","interaction":[{"code":"search-type"},{"code":"patch"}],"conditionalCreate":true,"versioning":"versioned-update","searchParam":[{"name":"identifier"}]}],"interaction":[{"code":"transaction"}]}]}`))
	f.Add([]byte(`{"resourceType":"Patient"}`))
	f.Add([]byte(`{"resourceType":"CapabilityStatement","rest":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := fhir.ParseCapabilities(body)
		if err == nil && c == nil {
			t.Fatal("no summary and no error")
		}
		if err != nil && c != nil {
			t.Fatal("a summary with an error")
		}
	})
}

// FuzzParseNotification: a rest-hook body (a resource or a notification
// Bundle) is read for its resource type or refused; never a panic, and an
// accepted body names a FHIR resource type.
func FuzzParseNotification(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Observation","id":"9","status":"final"}`))
	f.Add([]byte(`{"resourceType":"Bundle","type":"subscription-notification","entry":[{"resource":{"resourceType":"SubscriptionStatus"}},{"resource":{"resourceType":"Patient","id":"1"}}]}`))
	f.Add([]byte(`{"resourceType":"not a type"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		rt, ok := fhir.ParseNotification(body)
		if !ok && rt != "" {
			t.Fatalf("refused but named %q", rt)
		}
	})
}

package fhir_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/fhir"
	"github.com/switchboard-health/switchboard/jobs"
)

// withinSystem lists the peer's resources of a type carrying system, with
// the value of that identifier.
func (b *testBundle) withinSystem(t *testing.T, rt, system string) map[string][]string {
	t.Helper()
	status, bundle, _ := fhirDo(t, "GET", b.peerBase+"/"+rt+"?_count=1000&identifier="+url.QueryEscape(system+"|"), nil, nil)
	require.Equal(t, 200, status)
	out := map[string][]string{}
	entries, _ := bundle["entry"].([]any)
	for _, e := range entries {
		r := e.(map[string]any)["resource"].(map[string]any)
		for _, i := range r["identifier"].([]any) {
			im := i.(map[string]any)
			if im["system"] == system {
				out[im["value"].(string)] = append(out[im["value"].(string)], r["id"].(string))
			}
		}
	}
	return out
}

func TestIdentifierWithSearchCharactersDoesNotDuplicate(t *testing.T) {
	t.Parallel()
	b := setup(t, fhir.Config{})
	for _, ref := range []string{"mrn|7", "a,b", "x$y", `back\slash`, "all|of,them$\\"} {
		t.Run(ref, func(t *testing.T) {
			ref := ref + "-" + randHex(3)
			id := b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, FamilyName: "Token"})
			require.NoError(t, b.runPush(t, "patient", id))
			// The link is lost (a crash between the create and its commit):
			// the conditional create must find the one already there.
			_, err := b.pool.Exec(b.ctx, "DELETE FROM switchboard.fhir_links WHERE entity = 'patient' AND entity_id = $1", id)
			require.NoError(t, err)
			require.NoError(t, b.runPush(t, "patient", id))
			require.Len(t, b.withinSystem(t, "Patient", b.system)[fhir.PatientIdentifierValue(db.Patient{ExternalRef: ref})], 1, "one patient for %q", ref)
		})
	}
	// The first-time transaction path escapes too.
	ref := "tx|1,2$3-" + randHex(3)
	b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, FamilyName: "Token"})
	var oid int64
	b.tx(t, func(tx pgx.Tx) error {
		var err error
		oid, err = jobs.RecordObservation(b.ctx, tx, jobs.RecordObservationParams{PatientExternalRef: ref, Kind: "heart_rate", Value: 70,
			Unit: "/min", EffectiveStart: time.Now().Add(-time.Hour)})
		return err
	})
	require.NoError(t, b.runPush(t, "observation", oid))
	_, err := b.pool.Exec(b.ctx, "DELETE FROM switchboard.fhir_links WHERE endpoint_id = $1", b.endpoint.ID)
	require.NoError(t, err)
	require.NoError(t, b.runPush(t, "observation", oid))
	require.Len(t, b.withinSystem(t, "Patient", b.system)[fhir.PatientIdentifierValue(db.Patient{ExternalRef: ref})], 1)
}

// Two deployments (two databases, neither naming an identifier system)
// push to one EHR: their ids coincide (observation-1 in both), their
// identifier systems do not, so neither ever touches the other's resources.
func TestTwoDeploymentsOnOneEHRNeverCollide(t *testing.T) {
	t.Parallel()
	type dep struct {
		b   *testBundle
		pid int64
		oid int64
		sys string
	}
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	var deps []*dep
	for i, kind := range []string{"body_height", "heart_rate"} {
		b := setup(t, fhir.Config{})
		// Test databases are copies of one migrated template: give each
		// the deployment id its own first migration would have generated.
		_, err := b.pool.Exec(b.ctx, `UPDATE switchboard.deployment SET id = gen_random_uuid()`)
		require.NoError(t, err)
		_, err = b.pool.Exec(b.ctx, `UPDATE switchboard.ehr_endpoints SET identifier_system = NULL, updated_at = now()`)
		require.NoError(t, err)
		d := &dep{b: b}
		d.sys, err = fhir.DeploymentSystem(b.ctx, b.pool)
		require.NoError(t, err)
		d.pid = b.patient(t, jobs.UpsertPatientParams{ExternalRef: "patient-1", FamilyName: fmt.Sprint("Deployment", i)})
		unit := map[string]string{"body_height": "cm", "heart_rate": "/min"}[kind]
		b.tx(t, func(tx pgx.Tx) error {
			d.oid, err = jobs.RecordObservation(b.ctx, tx, jobs.RecordObservationParams{PatientExternalRef: "patient-1", Kind: kind,
				Value: 170, Unit: unit, EffectiveStart: at, Source: "google_health", SourceID: "o1"})
			return err
		})
		deps = append(deps, d)
	}
	require.Equal(t, deps[0].oid, deps[1].oid, "same local ids in both deployments")
	require.Equal(t, deps[0].pid, deps[1].pid)
	require.NotEqual(t, deps[0].sys, deps[1].sys, "each deployment has its own identifier system")
	require.Regexp(t, `^urn:uuid:[0-9a-f-]{36}$`, deps[0].sys)

	for _, d := range deps {
		require.NoError(t, d.b.runPush(t, "observation", d.oid))
	}
	for _, d := range deps {
		// Update once more: still only its own resource.
		d.b.tx(t, func(tx pgx.Tx) error {
			_, err := jobs.RecordObservation(d.b.ctx, tx, jobs.RecordObservationParams{PatientExternalRef: "patient-1",
				Kind: map[int]string{0: "body_height", 1: "heart_rate"}[indexOf(deps, d)], Value: 171,
				Unit: map[int]string{0: "cm", 1: "/min"}[indexOf(deps, d)], EffectiveStart: at, Source: "google_health", SourceID: "o1"})
			return err
		})
		require.NoError(t, d.b.runPush(t, "observation", d.oid))
	}
	codes := map[int]string{0: "8302-2", 1: "8867-4"}
	for i, d := range deps {
		obs := d.b.withinSystem(t, "Observation", d.sys)
		require.Len(t, obs, 1)
		ids := obs[fmt.Sprintf("observation-%d", d.oid)]
		require.Len(t, ids, 1)
		r := d.b.read(t, "Observation", ids[0])
		require.Equal(t, codes[i], r["code"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"], "its own kind, not the other's")
		pl := d.b.link(t, "patient", d.pid)
		require.Equal(t, "Patient/"+pl.ResourceID, r["subject"].(map[string]any)["reference"], "its own patient")
		p := d.b.read(t, "Patient", pl.ResourceID)
		require.Equal(t, fmt.Sprint("Deployment", i), p["name"].([]any)[0].(map[string]any)["family"])
	}
	require.NotEqual(t, deps[0].b.link(t, "patient", deps[0].pid).ResourceID, deps[1].b.link(t, "patient", deps[1].pid).ResourceID)
}

func indexOf[T comparable](s []T, v T) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func TestExampleIdentifierSystemIsRefused(t *testing.T) {
	t.Parallel()
	for _, s := range []string{fhir.ExampleIdentifierSystem, "https://switchboard.example/fhir/identifier/x"} {
		require.ErrorContains(t, fhir.Config{IdentifierSystem: s}.CheckIdentity(), "example")
		_, err := fhir.NewPushWorker(fhir.Deps{Pool: nil, Config: fhir.Config{IdentifierSystem: s}})
		require.Error(t, err)
	}
	require.NoError(t, fhir.Config{}.CheckIdentity())
	require.NoError(t, fhir.Config{IdentifierSystem: "https://hospital.example.org/switchboard"}.CheckIdentity())
}

// Medplum matches token values case-insensitively: a conditional create for
// patient "abc" finds patient "ABC". Switchboard checks the match carries
// its identifier exactly and refuses to write into another record.
func TestConditionalCreateMatchingAnotherRecordIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, fhir.Config{})
	suffix := randHex(3)
	upper := b.patient(t, jobs.UpsertPatientParams{ExternalRef: "CASE-" + suffix, FamilyName: "Upper", PhoneE164: "+15005550006"})
	require.NoError(t, b.runPush(t, "patient", upper))
	lower := b.patient(t, jobs.UpsertPatientParams{ExternalRef: "case-" + suffix, FamilyName: "Lower", PhoneE164: "+15005550009"})
	err := b.runPush(t, "patient", lower)
	ce := requireCancelled(t, err)
	require.Equal(t, fhir.ClassPermanent, fhir.Classify(ce.Unwrap(), 1))
	require.Contains(t, err.Error(), fmt.Sprintf("Patient for patient %d", lower))
	r := b.read(t, "Patient", b.link(t, "patient", upper).ResourceID)
	require.Equal(t, "Upper", r["name"].([]any)[0].(map[string]any)["family"], "the other patient is untouched")
	require.Equal(t, []string{"+15005550006"}, phones(r))
}

// TestEndpointIdentifierSystemCannotBeTheExample: an endpoint's own
// identifier system may not be the documentation's example either — not
// through `ehr add` (AddEndpoint), nor written into the table directly, on
// insert or update — while a system of its own is taken.
func TestEndpointIdentifierSystemCannotBeTheExample(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	ctx := context.Background()
	for i, s := range []string{fhir.ExampleIdentifierSystem, "https://switchboard.example/fhir/identifier/clinic-a"} {
		_, err := fhir.AddEndpoint(ctx, pool, nil, fhir.AddEndpointParams{Name: fmt.Sprintf("example-%d", i),
			BaseURL: "https://ehr.test/fhir", IdentifierSystem: s}, "test")
		var ie *fhir.InputError
		require.ErrorAs(t, err, &ie, s)
		require.ErrorContains(t, err, "identifier-system")
		require.ErrorContains(t, err, "example")

		_, err = db.New().EHREndpointInsert(ctx, pool, db.EHREndpointInsertParams{Name: fmt.Sprintf("direct-%d", i),
			BaseUrl: "https://ehr.test/fhir", AuthKind: "none", PushTypes: []string{}, PullTypes: []string{}, IdentifierSystem: &s,
			PullInterval: pgtype.Interval{Microseconds: int64(time.Minute / time.Microsecond), Valid: true}})
		requireRefused(t, err, "identifier_system")
	}
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM switchboard.ehr_endpoints`).Scan(&n))
	require.Zero(t, n, "nothing stored")

	own := "https://hospital.test/switchboard"
	ep, err := fhir.AddEndpoint(ctx, pool, nil, fhir.AddEndpointParams{Name: "own", BaseURL: "https://ehr.test/fhir", IdentifierSystem: own}, "test")
	require.NoError(t, err)
	require.Equal(t, own, *ep.IdentifierSystem)
	_, err = pool.Exec(ctx, `UPDATE switchboard.ehr_endpoints SET identifier_system = $2 WHERE id = $1`, ep.ID, fhir.ExampleIdentifierSystem)
	requireRefused(t, err, "identifier_system")
	_, err = pool.Exec(ctx, `UPDATE switchboard.ehr_endpoints SET identifier_system = NULL WHERE id = $1`, ep.ID)
	require.NoError(t, err, "NULL: the deployment's urn:uuid")
}

func requireRefused(t *testing.T, err error, field string) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "22023", pgErr.Code)
	require.Contains(t, pgErr.Message, field)
}

package fhir_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/fhir"
	"github.com/switchboard-health/switchboard/jobs"
)

// codes lists the LOINC codes of a CodeableConcept read from the peer.
func codes(cc any) []string {
	var out []string
	m, _ := cc.(map[string]any)
	cs, _ := m["coding"].([]any)
	for _, c := range cs {
		if cm, ok := c.(map[string]any); ok && cm["system"] == fhir.SystemLOINC {
			out = append(out, cm["code"].(string))
		}
	}
	return out
}

// startPullsAt makes an endpoint's pulls start near now instead of at the
// beginning of the shared peer's history.
func (b *testBundle) startPullsAt(t *testing.T, at time.Time, types ...string) {
	t.Helper()
	for _, rt := range types {
		require.NoError(t, db.New().FHIRPullCursorAdvance(b.ctx, b.pool, db.FHIRPullCursorAdvanceParams{EndpointID: b.endpoint.ID,
			ResourceType: rt, Cursor: &at}))
	}
}

// TestBloodPressureRoundTripsAsOnePanel: a blood pressure reading is pushed
// as one 85354-9 Observation with its 8480-6 and 8462-4 components (no lone
// systolic or diastolic Observation), and pulled back — by another
// deployment sharing the patient's identifier — as the same two values,
// once, however often it pulls.
func TestBloodPressureRoundTripsAsOnePanel(t *testing.T) {
	t.Parallel()
	b := setup(t, fhir.Config{})
	startedAt := time.Now()
	ref := "bp-" + randHex(4)
	pid := b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, FamilyName: "Pressure"})
	at := time.Date(2025, 1, 15, 8, 5, 0, 0, time.UTC)
	var sysID int64
	b.tx(t, func(tx pgx.Tx) error {
		var err error
		sysID, err = jobs.RecordBloodPressure(b.ctx, tx, jobs.RecordBloodPressureParams{PatientExternalRef: ref,
			Systolic: 128, Diastolic: 84, EffectiveStart: at})
		return err
	})
	var diaID int64
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT id FROM switchboard.observations
		WHERE patient_id = $1 AND kind = 'blood_pressure_diastolic'`, pid).Scan(&diaID))
	var queued []int64
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT coalesce(array_agg((args->>'entity_id')::bigint), '{}') FROM switchboard.river_job
		WHERE kind = 'fhir_push' AND args->>'entity' = 'observation' AND (args->>'entity_id')::bigint IN ($1, $2)`,
		sysID, diaID).Scan(&queued))
	require.Equal(t, []int64{sysID}, queued, "one push for the reading, queued for its systolic observation")

	require.NoError(t, b.runPush(t, "observation", sysID))
	before := b.proxy.requests()
	require.NoError(t, b.runPush(t, "observation", diaID))
	require.Equal(t, before, b.proxy.requests(), "the diastolic half's push finds the panel already written")

	subject := "Patient/" + b.link(t, "patient", pid).ResourceID
	onPeer := b.search(t, "Observation", "subject="+subject)
	require.Len(t, onPeer, 1, "one Observation for the reading")
	panel := onPeer[0]
	require.Equal(t, []string{fhir.LOINCBloodPressurePanel}, codes(panel["code"]))
	require.Nil(t, panel["valueQuantity"])
	values := map[string]float64{}
	for _, c := range panel["component"].([]any) {
		cm := c.(map[string]any)
		q := cm["valueQuantity"].(map[string]any)
		require.Equal(t, "mm[Hg]", q["code"])
		require.Equal(t, fhir.SystemUCUM, q["system"])
		for _, code := range codes(cm["code"]) {
			values[code] = q["value"].(float64)
		}
	}
	require.Equal(t, map[string]float64{fhir.LOINCSystolic: 128, fhir.LOINCDiastolic: 84}, values)
	require.Contains(t, panel["meta"].(map[string]any)["profile"], fhir.ProfileBloodPressure)
	for _, code := range []string{fhir.LOINCSystolic, fhir.LOINCDiastolic} {
		status, bundle, _ := fhirDo(t, "GET", b.base+"/Observation?subject="+subject+"&code="+code, nil, nil)
		require.Equal(t, 200, status)
		require.Empty(t, bundle["entry"], "no lone %s Observation", code)
	}
	require.Equal(t, sysID, observationIDOf(t, panel, b.system), "the panel carries the systolic observation's identifier")

	// This deployment's own pull sees its write as an echo: nothing new.
	b.startPullsAt(t, startedAt, "Observation")
	require.NoError(t, b.runPull(t, "Observation"))
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM switchboard.observations WHERE patient_id = $1`, pid).Scan(&n))
	require.Equal(t, 2, n)

	// Another deployment sharing the identifier system reads the panel as
	// the same two values, once.
	other := setup(t, fhir.Config{EchoTag: "https://other-deployment.test/tag|other"})
	_, err := other.pool.Exec(other.ctx, `UPDATE switchboard.ehr_endpoints SET identifier_system = $1 WHERE id = $2`, b.system, other.endpoint.ID)
	require.NoError(t, err)
	otherPID := other.patient(t, jobs.UpsertPatientParams{ExternalRef: ref})
	other.startPullsAt(t, startedAt, "Patient", "Observation")
	for range 2 {
		require.NoError(t, other.runPull(t, "Patient"))
		require.NoError(t, other.runPull(t, "Observation"))
		rows := other.pulledRows(t, otherPID)
		require.Equal(t, map[string]pulledRow{
			"Observation/" + panel["id"].(string) + "#8480-6": {"blood_pressure_systolic", 128, ptr[int32](0)},
			"Observation/" + panel["id"].(string) + "#8462-4": {"blood_pressure_diastolic", 84, ptr[int32](0)},
		}, rows)
	}
}

// observationIDOf reads the local observation id from the identifier of
// system on a resource.
func observationIDOf(t *testing.T, r map[string]any, system string) int64 {
	t.Helper()
	for _, i := range r["identifier"].([]any) {
		im := i.(map[string]any)
		if im["system"] == system {
			var id int64
			_, err := fmt.Sscanf(im["value"].(string), "observation-%d", &id)
			require.NoError(t, err)
			return id
		}
	}
	t.Fatalf("no identifier of %s", system)
	return 0
}

// TestRecordBloodPressure: one call records both halves of a reading,
// idempotently, and a bad value is refused naming systolic or diastolic
// with nothing written.
func TestRecordBloodPressure(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, "SELECT switchboard.upsert_patient('bp-1', NULL, 'Pressure', NULL, NULL, NULL)")
	require.NoError(t, err)
	at := time.Date(2025, 1, 15, 8, 5, 0, 0, time.UTC)
	record := func(p jobs.RecordBloodPressureParams) (int64, error) {
		p.PatientExternalRef, p.EffectiveStart = "bp-1", at
		var id int64
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			id, err = jobs.RecordBloodPressure(ctx, tx, p)
			return err
		})
		return id, err
	}
	id, err := record(jobs.RecordBloodPressureParams{Systolic: 121, Diastolic: 79})
	require.NoError(t, err)
	again, err := record(jobs.RecordBloodPressureParams{Systolic: 121, Diastolic: 79})
	require.NoError(t, err)
	require.Equal(t, id, again, "idempotent: the same reading")
	rows, err := pool.Query(ctx, `SELECT kind, value::float8, split_part(source_id, '#', 2) FROM switchboard.observations ORDER BY kind`)
	require.NoError(t, err)
	type row struct {
		Kind   string
		Value  float64
		Suffix string
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	require.NoError(t, err)
	require.Equal(t, []row{{"blood_pressure_diastolic", 79, "8462-4"}, {"blood_pressure_systolic", 121, "8480-6"}}, got)

	for _, c := range []struct {
		p     jobs.RecordBloodPressureParams
		field string
	}{
		{jobs.RecordBloodPressureParams{Systolic: 900, Diastolic: 80, SourceID: "r2", Source: "google_health"}, "systolic"},
		{jobs.RecordBloodPressureParams{Systolic: 120, Diastolic: -1, SourceID: "r3", Source: "google_health"}, "diastolic"},
		{jobs.RecordBloodPressureParams{Systolic: 120, Diastolic: 80, Source: "google_health"}, "source_id"},
	} {
		_, err := record(c.p)
		require.ErrorIs(t, err, jobs.ErrInvalidInput)
		require.ErrorContains(t, err, c.field)
	}
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM switchboard.observations`).Scan(&n))
	require.Equal(t, 2, n, "a refused reading writes neither half")
}

// onPeerByCode summarises a patient's Observations on the peer: for each
// Observation's LOINC code, the values it carries (its value or its
// components' values by code), and the resources themselves.
func (b *testBundle) onPeerByCode(t *testing.T, pid int64) (map[string][]map[string]float64, []map[string]any) {
	t.Helper()
	rs := b.search(t, "Observation", "subject=Patient/"+b.link(t, "patient", pid).ResourceID)
	out := map[string][]map[string]float64{}
	for _, r := range rs {
		values := map[string]float64{}
		if q, ok := r["valueQuantity"].(map[string]any); ok {
			values["value"] = q["value"].(float64)
		}
		comps, _ := r["component"].([]any)
		for _, c := range comps {
			cm := c.(map[string]any)
			for _, code := range codes(cm["code"]) {
				values[code] = cm["valueQuantity"].(map[string]any)["value"].(float64)
			}
		}
		for _, code := range codes(r["code"]) {
			out[code] = append(out[code], values)
		}
	}
	return out, rs
}

// TestWearableBloodPressureGoesOutAsOnePanel: an Apple Health reading —
// a systolic and a diastolic sample with their own UUIDs as source_ids and
// identical dates, recorded in one transaction as the apple_health_ingest
// job promotes an upload — is pushed as one 85354-9 panel, whichever half's
// push runs first; a half whose partner comes in a later upload ends as the
// same one panel; an ambiguous pair is pushed as lone readings.
func TestWearableBloodPressureGoesOutAsOnePanel(t *testing.T) {
	t.Parallel()
	b := setup(t, fhir.Config{})
	at := time.Date(2025, 3, 2, 7, 40, 0, 0, time.UTC)
	sample := func(ref, kind string, v float64) jobs.RecordObservationParams {
		return jobs.RecordObservationParams{PatientExternalRef: ref, Kind: kind, Value: v, Unit: "mm[Hg]",
			EffectiveStart: at, EffectiveEnd: at, Source: "apple_health", SourceID: "A1B2C3D4-" + randHex(8)}
	}
	record := func(ps ...jobs.RecordObservationParams) []int64 {
		var ids []int64
		b.tx(t, func(tx pgx.Tx) error {
			for _, p := range ps {
				id, err := jobs.RecordObservation(b.ctx, tx, p)
				if err != nil {
					return err
				}
				ids = append(ids, id)
			}
			return nil
		})
		return ids
	}
	panel := map[string][]map[string]float64{fhir.LOINCBloodPressurePanel: {{fhir.LOINCSystolic: 131, fhir.LOINCDiastolic: 86}}}

	t.Run("one upload", func(t *testing.T) {
		ref := "abp-" + randHex(4)
		pid := b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, FamilyName: "Pressure"})
		ids := record(sample(ref, "blood_pressure_systolic", 131), sample(ref, "blood_pressure_diastolic", 86))
		require.NoError(t, b.runPush(t, "observation", ids[1]), "the diastolic half's push runs first")
		require.NoError(t, b.runPush(t, "observation", ids[0]))
		got, rs := b.onPeerByCode(t, pid)
		require.Equal(t, panel, got, "one panel with both components, no lone 8480-6 or 8462-4")
		require.Equal(t, ids[0], observationIDOf(t, rs[0], b.system), "the panel carries the systolic observation's identifier")
		require.Contains(t, rs[0]["meta"].(map[string]any)["profile"], fhir.ProfileBloodPressure)
	})

	t.Run("partner in a later upload", func(t *testing.T) {
		for _, first := range []string{"blood_pressure_systolic", "blood_pressure_diastolic"} {
			ref := "abp-" + randHex(4)
			pid := b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, FamilyName: "Pressure"})
			sys, dia := sample(ref, "blood_pressure_systolic", 131), sample(ref, "blood_pressure_diastolic", 86)
			early, late := sys, dia
			if first == "blood_pressure_diastolic" {
				early, late = dia, sys
			}
			earlyID := record(early)[0]
			require.NoError(t, b.runPush(t, "observation", earlyID), "a half without a partner goes alone")
			lateID := record(late)[0]
			require.NoError(t, b.runPush(t, "observation", lateID))
			require.NoError(t, b.runPush(t, "observation", earlyID))
			got, _ := b.onPeerByCode(t, pid)
			require.Equal(t, panel, got, "%s first: the lone resource became the panel", first)
		}
	})

	t.Run("ambiguous pair", func(t *testing.T) {
		ref := "abp-" + randHex(4)
		pid := b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, FamilyName: "Pressure"})
		ids := record(sample(ref, "blood_pressure_systolic", 131), sample(ref, "blood_pressure_systolic", 133),
			sample(ref, "blood_pressure_diastolic", 86))
		for _, id := range ids {
			require.NoError(t, b.runPush(t, "observation", id))
		}
		got, _ := b.onPeerByCode(t, pid)
		require.Equal(t, map[string][]map[string]float64{
			fhir.LOINCSystolic:  {{"value": 131}, {"value": 133}},
			fhir.LOINCDiastolic: {{"value": 86}},
		}, sortedValues(got), "no guessed panel")
	})
}

// linkReads counts, per observation id, the queries that read an
// observation's fhir_links row (FHIRLinkGet).
type linkReads struct {
	mu sync.Mutex
	n  map[int64]int
}

func (l *linkReads) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "name: FHIRLinkGet ") && len(d.Args) == 3 && d.Args[1] == jobs.FHIREntityObservation {
		if id, ok := d.Args[2].(int64); ok {
			l.mu.Lock()
			l.n[id]++
			l.mu.Unlock()
		}
	}
	return ctx
}

func (*linkReads) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (l *linkReads) take() map[int64]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.n
	l.n = map[int64]int{}
	return n
}

// TestWearablePanelPushReadsTheAnchorsLinkOnce: the push of a wearable
// reading's panel reads the anchor's fhir_links row once, to choose the
// anchor, and writes from that row; it used to read it again before the
// write (the reading's lock keeps anything else from writing it between).
func TestWearablePanelPushReadsTheAnchorsLinkOnce(t *testing.T) {
	t.Parallel()
	reads := &linkReads{n: map[int64]int{}}
	pc, err := pgxpool.ParseConfig(dbtest.NewDatabase(t))
	require.NoError(t, err)
	pc.ConnConfig.Tracer = reads
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	b := setupOn(t, fhir.Config{}, pool)

	at := time.Date(2025, 5, 6, 8, 15, 0, 0, time.UTC)
	record := func(ref, kind string, v float64) int64 {
		var id int64
		b.tx(t, func(tx pgx.Tx) error {
			id, err = jobs.RecordObservation(b.ctx, tx, jobs.RecordObservationParams{PatientExternalRef: ref, Kind: kind, Value: v,
				Unit: "mm[Hg]", EffectiveStart: at, EffectiveEnd: at, Source: "apple_health", SourceID: "D00D0000-" + randHex(8)})
			return err
		})
		return id
	}
	panel := map[string][]map[string]float64{fhir.LOINCBloodPressurePanel: {{fhir.LOINCSystolic: 128, fhir.LOINCDiastolic: 84}}}

	t.Run("systolic anchor", func(t *testing.T) {
		ref := "rbp-" + randHex(4)
		pid := b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, FamilyName: "Pressure"})
		require.NoError(t, b.runPush(t, "patient", pid))
		sys, dia := record(ref, "blood_pressure_systolic", 128), record(ref, "blood_pressure_diastolic", 84)
		reads.take()
		require.NoError(t, b.runPush(t, "observation", dia), "creates the panel")
		require.Equal(t, map[int64]int{sys: 1, dia: 1}, reads.take(), "each half's link is read once (neither is linked: the systolic anchors)")
		require.NoError(t, b.runPush(t, "observation", sys), "finds the panel unchanged")
		require.Equal(t, map[int64]int{sys: 1}, reads.take(), "the linked systolic anchors: the diastolic's link is not needed")
		got, _ := b.onPeerByCode(t, pid)
		require.Equal(t, panel, got)
	})

	t.Run("diastolic anchor", func(t *testing.T) {
		ref := "rbp-" + randHex(4)
		pid := b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, FamilyName: "Pressure"})
		require.NoError(t, b.runPush(t, "patient", pid))
		dia := record(ref, "blood_pressure_diastolic", 84)
		require.NoError(t, b.runPush(t, "observation", dia), "goes alone")
		sys := record(ref, "blood_pressure_systolic", 128)
		reads.take()
		require.NoError(t, b.runPush(t, "observation", sys), "replaces the lone diastolic with the panel")
		require.Equal(t, map[int64]int{sys: 1, dia: 1}, reads.take(), "each half's link is read once")
		got, _ := b.onPeerByCode(t, pid)
		require.Equal(t, panel, got)
	})
}

// sortedValues orders each code's value sets by their "value".
func sortedValues(m map[string][]map[string]float64) map[string][]map[string]float64 {
	for _, vs := range m {
		sort.Slice(vs, func(i, j int) bool { return vs[i]["value"] < vs[j]["value"] })
	}
	return m
}

// TestReadingHalvesPushedAtOnceWriteOnePanel: the two halves of a reading
// each have a push job, and two workers may run them at the same moment.
// They resolve the pair and write one after the other (a lock per reading),
// so the EHR is never asked to create the panel twice at once — a server
// whose conditional create is not atomic would store it twice. The proxy
// holds the first Observation write until a second one arrives (or 3 s
// pass): before the lock, both writes were in flight together.
func TestReadingHalvesPushedAtOnceWriteOnePanel(t *testing.T) {
	t.Parallel()
	b := setup(t, fhir.Config{})
	at := time.Date(2025, 4, 9, 6, 30, 0, 0, time.UTC)
	ref := "cbp-" + randHex(4)
	pid := b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, FamilyName: "Pressure"})
	require.NoError(t, b.runPush(t, "patient", pid))
	var ids []int64
	b.tx(t, func(tx pgx.Tx) error {
		for _, s := range []struct {
			kind string
			v    float64
		}{{"blood_pressure_systolic", 140}, {"blood_pressure_diastolic", 90}} {
			id, err := jobs.RecordObservation(b.ctx, tx, jobs.RecordObservationParams{PatientExternalRef: ref, Kind: s.kind, Value: s.v,
				Unit: "mm[Hg]", EffectiveStart: at, EffectiveEnd: at, Source: "apple_health", SourceID: "C0FFEE00-" + randHex(8)})
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})

	var (
		mu             sync.Mutex
		inFlight, most int
		seen           int
		second         = make(chan struct{})
	)
	b.proxy.setHook(func(r *http.Request) {
		if r.Method == http.MethodGet || !strings.Contains(r.URL.Path, "Observation") {
			return
		}
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		seen++
		n := seen
		if inFlight == 2 && most == 2 && seen == 2 {
			close(second) // once: the second write ever seen overlaps the first
		}
		mu.Unlock()
		defer func() { mu.Lock(); inFlight--; mu.Unlock() }()
		if n == 1 { // the first write waits for a second one, or 3 s
			select {
			case <-second:
			case <-time.After(3 * time.Second):
			}
		}
	})

	var wg sync.WaitGroup
	errs := make([]error, len(ids))
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.runPush(t, "observation", id)
		}()
	}
	wg.Wait()
	b.proxy.setHook(nil)
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	mu.Lock()
	require.Equal(t, 1, most, "the halves' writes never overlap")
	mu.Unlock()
	got, _ := b.onPeerByCode(t, pid)
	require.Equal(t, map[string][]map[string]float64{fhir.LOINCBloodPressurePanel: {{fhir.LOINCSystolic: 140, fhir.LOINCDiastolic: 90}}}, got,
		"one panel")
}

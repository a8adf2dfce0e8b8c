package fhir_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/fhir"
	"github.com/switchboard-health/switchboard/jobs"
)

// pullFixture is a local patient linked on the peer, ready for the EHR to
// write observations of its own.
func pullFixture(t *testing.T) (*testBundle, int64, string) {
	t.Helper()
	b := setup(t, fhir.Config{})
	ref := "vitals-" + randHex(4)
	pid := b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, FamilyName: "Vitals"})
	require.NoError(t, b.runPush(t, "patient", pid))
	return b, pid, "Patient/" + b.link(t, "patient", pid).ResourceID
}

func loinc(codes ...string) map[string]any {
	var cs []any
	for _, c := range codes {
		cs = append(cs, map[string]any{"system": fhir.SystemLOINC, "code": c})
	}
	return map[string]any{"coding": cs}
}

func quantity(v float64, unit string) map[string]any {
	return map[string]any{"value": v, "unit": unit, "system": fhir.SystemUCUM, "code": unit}
}

func (b *testBundle) ehrObservation(t *testing.T, subject string, r map[string]any) string {
	t.Helper()
	r["resourceType"], r["status"], r["subject"] = "Observation", "final", map[string]any{"reference": subject}
	status, created, _ := fhirDo(t, "POST", b.base+"/Observation", r, nil)
	require.Equal(t, 201, status)
	return created["id"].(string)
}

type pulledRow struct {
	Kind   string
	Value  float64
	Offset *int32
}

func (b *testBundle) pulledRows(t *testing.T, pid int64) map[string]pulledRow {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT source_id, kind, value::float8, utc_offset_seconds FROM switchboard.observations
		WHERE patient_id = $1 AND source = 'ehr:medplum'`, pid)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (struct {
		id string
		pulledRow
	}, error) {
		var x struct {
			id string
			pulledRow
		}
		err := r.Scan(&x.id, &x.Kind, &x.Value, &x.Offset)
		return x, err
	})
	require.NoError(t, err)
	m := map[string]pulledRow{}
	for _, x := range out {
		m[x.id] = x.pulledRow
	}
	return m
}

// TestPullReadsEveryCodeOfAKind: an SpO2 coded only as 59408-5 (pulse
// oximetry) and a blood pressure panel (85354-9 with 8480-6 / 8462-4
// components) are read, not ignored as "no mapped LOINC code".
func TestPullReadsEveryCodeOfAKind(t *testing.T) {
	t.Parallel()
	b, pid, subject := pullFixture(t)
	spo2 := b.ehrObservation(t, subject, map[string]any{"code": loinc("59408-5"),
		"effectiveDateTime": "2025-01-15T08:00:00Z", "valueQuantity": quantity(97, "%")})
	bp := b.ehrObservation(t, subject, map[string]any{"code": loinc("85354-9"), "effectiveDateTime": "2025-01-15T08:05:00Z",
		"component": []any{
			map[string]any{"code": loinc("8480-6"), "valueQuantity": quantity(121, "mm[Hg]")},
			map[string]any{"code": loinc("8462-4"), "valueQuantity": quantity(79, "mm[Hg]")},
		}})
	require.NoError(t, b.runPull(t, "Observation"))
	rows := b.pulledRows(t, pid)
	require.Equal(t, "spo2", rows["Observation/"+spo2].Kind)
	require.Equal(t, 97.0, rows["Observation/"+spo2].Value)
	require.Equal(t, pulledRow{"blood_pressure_systolic", 121, ptr[int32](0)}, rows["Observation/"+bp+"#8480-6"])
	require.Equal(t, pulledRow{"blood_pressure_diastolic", 79, ptr[int32](0)}, rows["Observation/"+bp+"#8462-4"])
}

// TestPulledImplausibleValueIsQuarantined: a 999 bpm heart rate is not
// stored as an observation, its resource is kept as quarantined with the
// reason, and the event says rejected, not applied.
func TestPulledImplausibleValueIsQuarantined(t *testing.T) {
	t.Parallel()
	b, pid, subject := pullFixture(t)
	id := b.ehrObservation(t, subject, map[string]any{"code": loinc("8867-4"),
		"effectiveDateTime": "2025-01-15T08:00:00Z", "valueQuantity": quantity(999, "/min")})
	require.NoError(t, b.runPull(t, "Observation"))
	require.Empty(t, b.pulledRows(t, pid))
	var state, reason string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT state, reason FROM switchboard.fhir_inbound
		WHERE resource_type = 'Observation' AND resource_id = $1`, id).Scan(&state, &reason))
	require.Equal(t, "quarantined", state)
	require.Contains(t, reason, "out of range for heart_rate")
	require.NotContains(t, reason, "999", "the reason names the rule, not the value")
	var kinds []string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT array_agg(kind ORDER BY id) FROM switchboard.events WHERE subject = $1`,
		fmt.Sprintf("patient/%d", pid)).Scan(&kinds))
	require.Contains(t, kinds, "ehr.data_rejected")
	require.NotContains(t, kinds, "ehr.data_pulled")
}

// TestLocalOffsetsAreKept: a pulled observation keeps the UTC offset the
// EHR wrote (fixed past instants: no dependence on today's date).
func TestLocalOffsetsAreKept(t *testing.T) {
	t.Parallel()
	b, pid, subject := pullFixture(t)
	east := b.ehrObservation(t, subject, map[string]any{"code": loinc("8867-4"),
		"effectiveDateTime": "2025-01-15T08:00:00+05:30", "valueQuantity": quantity(61, "/min")})
	west := b.ehrObservation(t, subject, map[string]any{"code": loinc("41950-7"),
		"effectivePeriod": map[string]any{"start": "2025-01-15T00:00:00-07:00", "end": "2025-01-16T00:00:00-07:00"},
		"valueQuantity":   quantity(8000, "/d")})
	require.NoError(t, b.runPull(t, "Observation"))
	rows := b.pulledRows(t, pid)
	require.Equal(t, int32(19800), *rows["Observation/"+east].Offset)
	require.Equal(t, int32(-25200), *rows["Observation/"+west].Offset)
	var start time.Time
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT effective_start FROM switchboard.observations WHERE source_id = $1`,
		"Observation/"+west).Scan(&start))
	require.True(t, start.Equal(time.Date(2025, 1, 15, 7, 0, 0, 0, time.UTC)))
}

// TestPulledPanelWithARefusedComponentStoresNeitherHalf: a blood pressure
// panel whose diastolic is implausible is quarantined as one resource — its
// plausible systolic is not stored alone, as half a reading the event calls
// rejected.
func TestPulledPanelWithARefusedComponentStoresNeitherHalf(t *testing.T) {
	t.Parallel()
	b, pid, subject := pullFixture(t)
	id := b.ehrObservation(t, subject, map[string]any{"code": loinc("85354-9"), "effectiveDateTime": "2025-01-15T08:05:00Z",
		"component": []any{
			map[string]any{"code": loinc("8480-6"), "valueQuantity": quantity(121, "mm[Hg]")},
			map[string]any{"code": loinc("8462-4"), "valueQuantity": quantity(999, "mm[Hg]")},
		}})
	require.NoError(t, b.runPull(t, "Observation"))
	require.Empty(t, b.pulledRows(t, pid))
	var state, reason string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT state, reason FROM switchboard.fhir_inbound
		WHERE resource_type = 'Observation' AND resource_id = $1`, id).Scan(&state, &reason))
	require.Equal(t, "quarantined", state)
	require.Contains(t, reason, "blood_pressure_diastolic")
}

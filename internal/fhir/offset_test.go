package fhir_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/fhir"
	"github.com/switchboard-health/switchboard/jobs"
)

// TestRecordedOffsetIsPushed: record_observation's utc_offset_seconds is
// stored and the push writes the effective time in it, so a daily step
// count keeps its local day (fixed past instants: no dependence on today).
func TestRecordedOffsetIsPushed(t *testing.T) {
	t.Parallel()
	b := setup(t, fhir.Config{})
	ref := "offset-" + randHex(4)
	b.patient(t, jobs.UpsertPatientParams{ExternalRef: ref, FamilyName: "Offset"})
	record := func(p jobs.RecordObservationParams) (int64, error) {
		p.PatientExternalRef = ref
		var id int64
		err := pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
			var err error
			id, err = jobs.RecordObservation(b.ctx, tx, p)
			return err
		})
		return id, err
	}
	offset := func(id int64) *int32 {
		var o *int32
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT utc_offset_seconds FROM switchboard.observations WHERE id = $1`, id).Scan(&o))
		return o
	}
	// 2025-01-15 in Denver (-07:00) is 07:00Z to 07:00Z the next day.
	day := time.Date(2025, 1, 15, 7, 0, 0, 0, time.UTC)
	steps := jobs.RecordObservationParams{Kind: "steps", Value: 8000, Unit: "/d", EffectiveStart: day, EffectiveEnd: day.Add(24 * time.Hour),
		Source: "google_health", SourceID: "steps-2025-01-15", UTCOffsetSeconds: ptr[int32](-25200)}
	stepsID, err := record(steps)
	require.NoError(t, err)
	require.Equal(t, int32(-25200), *offset(stepsID))
	hr := jobs.RecordObservationParams{Kind: "heart_rate", Value: 61, Unit: "/min", EffectiveStart: time.Date(2025, 1, 15, 8, 0, 0, 0, time.UTC),
		UTCOffsetSeconds: ptr[int32](19800)}
	hrID, err := record(hr)
	require.NoError(t, err)

	t.Run("PushedInTheOffset", func(t *testing.T) {
		require.NoError(t, b.runPush(t, "observation", stepsID))
		require.NoError(t, b.runPush(t, "observation", hrID))
		s := b.read(t, "Observation", b.link(t, "observation", stepsID).ResourceID)
		require.Equal(t, map[string]any{"start": "2025-01-15T00:00:00-07:00", "end": "2025-01-16T00:00:00-07:00"}, s["effectivePeriod"])
		h := b.read(t, "Observation", b.link(t, "observation", hrID).ResourceID)
		require.Equal(t, "2025-01-15T13:30:00+05:30", h["effectiveDateTime"])
	})

	t.Run("OmittedKeepsTheStoredOffset", func(t *testing.T) {
		again := steps
		again.UTCOffsetSeconds = nil
		id, err := record(again)
		require.NoError(t, err)
		require.Equal(t, stepsID, id)
		require.Equal(t, int32(-25200), *offset(stepsID))
	})

	t.Run("ChangedOffsetIsPushedAgain", func(t *testing.T) {
		moved := steps
		moved.UTCOffsetSeconds = ptr[int32](-21600)
		_, err := record(moved)
		require.NoError(t, err)
		require.NoError(t, b.runPush(t, "observation", stepsID))
		s := b.read(t, "Observation", b.link(t, "observation", stepsID).ResourceID)
		require.Equal(t, "2025-01-15T01:00:00-06:00", s["effectivePeriod"].(map[string]any)["start"])
	})

	t.Run("BadOffsetIsRefusedNamingIt", func(t *testing.T) {
		for _, o := range []int32{50460, -50460, 30, 86400} {
			bad := hr
			bad.EffectiveStart = bad.EffectiveStart.Add(time.Minute)
			bad.UTCOffsetSeconds = &o
			_, err := record(bad)
			require.ErrorIs(t, err, jobs.ErrInvalidInput, "%d", o)
			require.ErrorContains(t, err, "utc_offset_seconds", "%d", o)
		}
		for _, o := range []int32{50400, -50400, 20700} {
			ok := hr
			ok.EffectiveStart = ok.EffectiveStart.Add(time.Duration(o) * time.Millisecond)
			ok.UTCOffsetSeconds = &o
			_, err := record(ok)
			require.NoError(t, err, "%d", o)
		}
	})
}

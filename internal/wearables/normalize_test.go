package wearables_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/applehealth"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/googlehealth"
	"github.com/switchboard-health/switchboard/internal/obskind"
	"github.com/switchboard-health/switchboard/internal/wearables"
)

func TestAssess(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		kind, unit     string
		value          float64
		flag, rejected string
	}{
		{"heart_rate", "/min", 72, "", ""},
		{"heart_rate", "/min", 30, "L", ""},
		{"heart_rate", "/min", 230, "H", ""},
		{"heart_rate", "/min", 0, "", wearables.RejectOutOfRange},
		{"heart_rate", "/min", 320, "", wearables.RejectOutOfRange},
		{"heart_rate", "bpm", 72, "", wearables.RejectUnit},
		{"resting_heart_rate", "/min", 58, "", ""},
		{"resting_heart_rate", "/min", 125, "H", ""},
		{"resting_heart_rate", "/min", 200, "", wearables.RejectOutOfRange},
		{"steps", "/d", 8000, "", ""},
		{"steps", "/d", 70000, "H", ""},
		{"steps", "/d", -1, "", wearables.RejectOutOfRange},
		{"steps", "/d", 150000, "", wearables.RejectOutOfRange},
		{"weight", "kg", 81.2, "", ""},
		{"weight", "kg", 0.2, "", wearables.RejectOutOfRange},
		{"weight", "kg", 800, "", wearables.RejectOutOfRange},
		{"weight", "g", 81200, "", wearables.RejectUnit},
		{"spo2", "%", 97, "", ""},
		{"spo2", "%", 85, "L", ""},
		{"spo2", "%", 40, "", wearables.RejectOutOfRange},
		{"spo2", "%", 101, "", wearables.RejectOutOfRange},
		{"sleep_duration", "min", 480, "", ""},
		{"sleep_duration", "min", 90, "L", ""},
		{"sleep_duration", "min", 1000, "H", ""},
		{"sleep_duration", "min", 1500, "", wearables.RejectOutOfRange},
		{"blood_pressure_systolic", "mm[Hg]", 120, "", ""},
		{"blood_pressure_systolic", "mm[Hg]", 185, "H", ""},
		{"blood_pressure_systolic", "mm[Hg]", 400, "", wearables.RejectOutOfRange},
		{"blood_pressure_diastolic", "mm[Hg]", 125, "H", ""},
		{"blood_pressure_diastolic", "mm[Hg]", 10, "", wearables.RejectOutOfRange},
		{"heart_rate", "/min", math.NaN(), "", wearables.RejectNotANumber},
		{"unknown", "/min", 1, "", wearables.RejectUnit},
	}
	for _, tc := range cases {
		m := wearables.Measurement{Kind: tc.kind, Unit: tc.unit, Value: tc.value, Start: now.Add(-time.Hour), Session: true}
		wearables.Assess(&m, now)
		require.Equal(t, tc.rejected, m.Rejection, "%s %v %s", tc.kind, tc.value, tc.unit)
		require.Equal(t, tc.flag, m.Interpretation, "%s %v %s", tc.kind, tc.value, tc.unit)
	}

	t.Run("FutureAndBackwardsTimesAreRejected", func(t *testing.T) {
		m := wearables.Measurement{Kind: "heart_rate", Unit: "/min", Value: 70, Start: now.Add(48 * time.Hour)}
		wearables.Assess(&m, now)
		require.Equal(t, wearables.RejectFuture, m.Rejection)
		end := now.Add(-2 * time.Hour)
		m = wearables.Measurement{Kind: "steps", Unit: "/d", Value: 70, Start: now.Add(-time.Hour), End: &end}
		wearables.Assess(&m, now)
		require.Equal(t, wearables.RejectEndBeforeStart, m.Rejection)
	})

	t.Run("SleepSegmentsAreNotFlaggedAsShortNights", func(t *testing.T) {
		m := wearables.Measurement{Kind: "sleep_duration", Unit: "min", Value: 30, Start: now.Add(-time.Hour)}
		wearables.Assess(&m, now)
		require.Empty(t, m.Interpretation)
	})
}

func TestFromGoogle(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 6, 6, 20, 10, 15, 0, time.UTC)
	src := &googlehealth.DataSource{Platform: "FITBIT", RecordingMethod: "PASSIVELY_MEASURED"}
	hr := googlehealth.DataPoint{DataSource: src, HeartRate: &googlehealth.HeartRate{BeatsPerMinute: 81, SampleTime: googlehealth.SampleTime{PhysicalTime: at, UTCOffset: googlehealth.Duration(time.Hour)}}}
	m, ok := wearables.FromGoogle("u1", googlehealth.TypeHeartRate, hr)
	require.True(t, ok)
	require.Equal(t, "heart_rate", m.Kind)
	require.Equal(t, "/min", m.Unit)
	require.Equal(t, 81.0, m.Value)
	require.True(t, m.HighFrequency)
	require.Equal(t, 3600, *m.UTCOffset)
	require.Contains(t, m.SourceID, "gh:u1:heart-rate:")

	w := googlehealth.DataPoint{Name: "users/u1/dataTypes/weight/dataPoints/x", Weight: &googlehealth.Weight{WeightGrams: 81234.5, SampleTime: googlehealth.SampleTime{PhysicalTime: at, UTCOffset: googlehealth.Duration(-5 * time.Hour)}}}
	m, ok = wearables.FromGoogle("u1", googlehealth.TypeWeight, w)
	require.True(t, ok)
	require.Equal(t, "kg", m.Unit)
	require.InDelta(t, 81.2345, m.Value, 1e-9)
	require.Equal(t, "gh:u1:weight:users/u1/dataTypes/weight/dataPoints/x", m.SourceID)

	sl := &googlehealth.Sleep{Interval: googlehealth.Interval{StartTime: at.Add(-8 * time.Hour), EndTime: at}}
	sl.Summary.MinutesAsleep = 450
	_, ok = wearables.FromGoogle("u1", googlehealth.TypeSleep, googlehealth.DataPoint{Sleep: sl})
	require.False(t, ok, "unprocessed sleep is read again later")
	sl.Metadata.Processed = true
	m, ok = wearables.FromGoogle("u1", googlehealth.TypeSleep, googlehealth.DataPoint{Sleep: sl})
	require.True(t, ok)
	require.Equal(t, "sleep_duration", m.Kind)
	require.Equal(t, "min", m.Unit)
	require.Equal(t, 450.0, m.Value)
	require.NotNil(t, m.End)

	spo := googlehealth.DataPoint{DailyOxygenSaturation: &googlehealth.DailyOxygenSaturation{Date: googlehealth.Date{Year: 2026, Month: 6, Day: 6}, AveragePercentage: 50}}
	m, ok = wearables.FromGoogle("u1", googlehealth.TypeDailyOxygenSaturation, spo)
	require.True(t, ok)
	wearables.Assess(&m, at)
	require.Equal(t, wearables.RejectSentinel, m.Rejection)

	rhr := googlehealth.DataPoint{DailyRestingHeartRate: &googlehealth.DailyRestingHeartRate{Date: googlehealth.Date{Year: 2026, Month: 6, Day: 6}, BeatsPerMinute: 58}}
	m, ok = wearables.FromGoogle("u1", googlehealth.TypeDailyRestingHeartRate, rhr)
	require.True(t, ok)
	require.Equal(t, "gh:u1:daily-resting-heart-rate:2026-06-06", m.SourceID)

	loc, _ := time.LoadLocation("America/New_York")
	rp := googlehealth.RollupPoint{}
	rp.CivilStartTime.Date = googlehealth.Date{Year: 2026, Month: 11, Day: 25}
	rp.Steps = &struct {
		CountSum googlehealth.Int64 `json:"countSum"`
	}{CountSum: 8123}
	m, ok = wearables.FromGoogleDailySteps("u1", rp, loc)
	require.True(t, ok)
	require.Equal(t, "/d", m.Unit)
	require.Equal(t, time.Date(2026, 11, 25, 5, 0, 0, 0, time.UTC), m.Start)
	require.Equal(t, -5*3600, *m.UTCOffset)
}

func TestFromApple(t *testing.T) {
	t.Parallel()
	body := `{"samples":[
	 {"uuid":"11111111-1111-1111-1111-111111111111","type":"HKQuantityTypeIdentifierOxygenSaturation","value":0.97,"unit":"%","startDate":"2026-11-25T08:00:00-05:00","endDate":"2026-11-25T08:00:00-05:00"},
	 {"uuid":"22222222-2222-2222-2222-222222222222","type":"HKQuantityTypeIdentifierBodyMass","value":180,"unit":"lb","startDate":"2026-11-25T08:00:00-05:00","endDate":"2026-11-25T08:00:00-05:00"},
	 {"uuid":"33333333-3333-3333-3333-333333333333","type":"HKQuantityTypeIdentifierStepCount","value":8000,"unit":"count","startDate":"2026-11-24T00:00:00-05:00","endDate":"2026-11-25T00:00:00-05:00"},
	 {"uuid":"44444444-4444-4444-4444-444444444444","type":"HKQuantityTypeIdentifierStepCount","value":80,"unit":"count","startDate":"2026-11-24T10:00:00-05:00","endDate":"2026-11-24T10:05:00-05:00"},
	 {"uuid":"55555555-5555-5555-5555-555555555555","type":"HKCategoryTypeIdentifierSleepAnalysis","value":4,"unit":"","startDate":"2026-11-24T01:00:00-05:00","endDate":"2026-11-24T02:30:00-05:00"},
	 {"uuid":"66666666-6666-6666-6666-666666666666","type":"HKCategoryTypeIdentifierSleepAnalysis","value":0,"unit":"","startDate":"2026-11-24T00:00:00-05:00","endDate":"2026-11-24T07:00:00-05:00"},
	 {"uuid":"77777777-7777-7777-7777-777777777777","type":"HKQuantityTypeIdentifierHeartRate","value":1.2,"unit":"count/s","startDate":"2026-11-25T08:00:00-05:00","endDate":"2026-11-25T08:00:00-05:00"},
	 {"uuid":"88888888-8888-8888-8888-888888888888","type":"HKQuantityTypeIdentifierRestingHeartRate","value":58,"unit":"count/min","startDate":"2026-11-25T00:00:00-05:00","endDate":"2026-11-25T23:59:59-05:00"},
	 {"uuid":"99999999-9999-9999-9999-999999999999","type":"HKQuantityTypeIdentifierBloodPressureSystolic","value":120,"unit":"mmHg","startDate":"2026-11-25T08:00:00-05:00","endDate":"2026-11-25T08:00:00-05:00"}
	],"deleted":["aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"]}`
	qs, deleted, err := applehealth.Parse([]byte(body))
	require.NoError(t, err)
	require.Equal(t, []string{"AAAAAAAA-AAAA-AAAA-AAAA-AAAAAAAAAAAA"}, deleted)
	require.Len(t, qs, 8, "inBed is not a measure")
	byID := map[string]wearables.Measurement{}
	for _, q := range qs {
		m := wearables.FromApple(q)
		byID[m.SourceID[:8]] = m
	}
	require.InDelta(t, 97.0, byID["11111111"].Value, 1e-9, "SpO2 fraction becomes a percentage")
	require.Equal(t, "%", byID["11111111"].Unit)
	require.Equal(t, "81.65", byID["22222222"].Decimal, "180 lb: exact decimal, the source's precision")
	require.Equal(t, 81.65, byID["22222222"].Value)
	require.Equal(t, "180", byID["22222222"].SourceValue)
	require.Equal(t, "lb", byID["22222222"].SourceUnit)
	require.Equal(t, "/d", byID["33333333"].Unit)
	require.False(t, byID["33333333"].Raw)
	require.True(t, byID["44444444"].Raw, "step intervals would double count")
	require.Equal(t, 90.0, byID["55555555"].Value)
	require.Equal(t, "sleep_duration", byID["55555555"].Kind)
	require.Equal(t, 72.0, byID["77777777"].Value)
	require.True(t, byID["77777777"].HighFrequency)
	require.Equal(t, -5*3600, *byID["77777777"].UTCOffset)
	require.Equal(t, "mm[Hg]", byID["99999999"].Unit)
}

// TestMeasuresAreObservationKinds: every kind wearables record, and every
// unit its ranges are in, is one switchboard.observation_kinds (the one
// source of kinds, codes and units, read through internal/obskind) accepts.
func TestMeasuresAreObservationKinds(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	kinds, err := obskind.Load(t.Context(), pool)
	require.NoError(t, err)
	for name, me := range wearables.Measures {
		require.Equal(t, name, me.Kind)
		k, ok := kinds.Kind(name)
		require.True(t, ok, "%s is not in switchboard.observation_kinds", name)
		for _, u := range me.Units {
			require.Contains(t, k.Units, u, name)
		}
	}
}

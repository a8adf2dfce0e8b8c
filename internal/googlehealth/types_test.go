package googlehealth_test

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/googlehealth"
)

func TestFilter(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	end := start.Add(24 * time.Hour)
	for dataType, want := range map[string]string{
		googlehealth.TypeHeartRate:             `heart_rate.sample_time.physical_time >= "2026-11-25T00:00:00Z" AND heart_rate.sample_time.physical_time < "2026-11-26T00:00:00Z"`,
		googlehealth.TypeWeight:                `weight.sample_time.physical_time >= "2026-11-25T00:00:00Z" AND weight.sample_time.physical_time < "2026-11-26T00:00:00Z"`,
		googlehealth.TypeSteps:                 `steps.interval.start_time >= "2026-11-25T00:00:00Z" AND steps.interval.start_time < "2026-11-26T00:00:00Z"`,
		googlehealth.TypeSleep:                 `sleep.interval.end_time >= "2026-11-25T00:00:00Z" AND sleep.interval.end_time < "2026-11-26T00:00:00Z"`,
		googlehealth.TypeDailyRestingHeartRate: `daily_resting_heart_rate.date >= "2026-11-25" AND daily_resting_heart_rate.date < "2026-11-26"`,
		googlehealth.TypeDailyOxygenSaturation: `daily_oxygen_saturation.date >= "2026-11-25" AND daily_oxygen_saturation.date < "2026-11-26"`,
	} {
		require.Equal(t, want, googlehealth.Filter(dataType, start, end), dataType)
	}
	for _, dataType := range []string{googlehealth.TypeHeartRate, googlehealth.TypeSteps, googlehealth.TypeSleep, googlehealth.TypeDailyRestingHeartRate} {
		_, ok := googlehealth.KindOf(dataType)
		require.True(t, ok, dataType)
	}
	_, ok := googlehealth.KindOf("blood-pressure")
	require.False(t, ok, "does not exist in v4")
	// Instants in another zone are written in UTC.
	ny := time.FixedZone("EST", -5*3600)
	require.Equal(t, googlehealth.Filter(googlehealth.TypeHeartRate, start, end),
		googlehealth.Filter(googlehealth.TypeHeartRate, start.In(ny), end.In(ny)))
}

// TestDataPointJSON reads data points as Google writes them (reference §4):
// int64 values as strings, doubles as numbers, "NaN" or strings, offsets as
// duration strings, and — proto3's JSON mapping — null for a field at its
// default.
func TestDataPointJSON(t *testing.T) {
	t.Parallel()

	t.Run("ReferenceShapes", func(t *testing.T) {
		t.Parallel()
		var p googlehealth.Page
		require.NoError(t, json.Unmarshal([]byte(`{"dataPoints":[
			{"steps":{"count":"11","interval":{"startTime":"2026-05-29T17:34:00Z","startUtcOffset":"-14400s","endTime":"2026-05-29T17:35:00Z","endUtcOffset":"-14400s"}}},
			{"heartRate":{"beatsPerMinute":"81","sampleTime":{"physicalTime":"2026-06-06T20:10:15Z","utcOffset":"3600s"},"metadata":{"motionContext":"SEDENTARY","sensorLocation":"WRIST"}}},
			{"sleep":{"interval":{"startTime":"2026-06-06T23:00:00Z","endTime":"2026-06-07T07:54:00Z"},"type":"STAGES","stages":[{"type":"LIGHT","startTime":"2026-06-06T23:00:00Z","endTime":"2026-06-06T23:30:00Z"}],
			  "summary":{"minutesInSleepPeriod":"534","minutesAsleep":"525"},"metadata":{"processed":true,"mainSleep":true}}},
			{"name":"users/hu-1/dataTypes/weight/dataPoints/w1","weight":{"weightGrams":81234.5,"sampleTime":{"physicalTime":"2026-09-09T01:24:00Z","utcOffset":"-18000s"}}},
			{"dailyOxygenSaturation":{"date":{"year":2026,"month":6,"day":7},"averagePercentage":"NaN","lowerBoundPercentage":"94.5"}}
		],"nextPageToken":"t"}`), &p))
		require.Len(t, p.DataPoints, 5)
		require.Equal(t, googlehealth.Int64(11), p.DataPoints[0].Steps.Count)
		require.Equal(t, -14400, p.DataPoints[0].Steps.Interval.StartUTCOffset.Seconds())
		require.Equal(t, googlehealth.Int64(81), p.DataPoints[1].HeartRate.BeatsPerMinute)
		require.Equal(t, googlehealth.Int64(525), p.DataPoints[2].Sleep.Summary.MinutesAsleep)
		require.Equal(t, googlehealth.Double(81234.5), p.DataPoints[3].Weight.WeightGrams)
		require.True(t, math.IsNaN(float64(p.DataPoints[4].DailyOxygenSaturation.AveragePercentage)))
		require.Equal(t, googlehealth.Double(94.5), p.DataPoints[4].DailyOxygenSaturation.LowerBoundPercentage)
		require.Equal(t, googlehealth.Date{Year: 2026, Month: 6, Day: 7}, p.DataPoints[4].DailyOxygenSaturation.Date)
	})

	t.Run("NullIsTheDefault", func(t *testing.T) {
		t.Parallel()
		var p googlehealth.DataPoint
		require.NoError(t, json.Unmarshal([]byte(`{"dailyOxygenSaturation":{"date":{"year":2026,"month":6,"day":7},
			"averagePercentage":96.5,"lowerBoundPercentage":null,"upperBoundPercentage":null}}`), &p))
		require.Equal(t, googlehealth.Double(96.5), p.DailyOxygenSaturation.AveragePercentage)
		require.Zero(t, p.DailyOxygenSaturation.LowerBoundPercentage)
		require.NoError(t, json.Unmarshal([]byte(`{"heartRate":{"beatsPerMinute":null,"sampleTime":{"physicalTime":"2026-06-06T20:10:15Z","utcOffset":null}}}`), &p))
	})

	t.Run("GarbageIsAnError", func(t *testing.T) {
		t.Parallel()
		var d googlehealth.Double
		require.Error(t, json.Unmarshal([]byte(`"ninety"`), &d))
		var i googlehealth.Int64
		require.Error(t, json.Unmarshal([]byte(`"1.5"`), &i))
		var du googlehealth.Duration
		require.Error(t, json.Unmarshal([]byte(`"5m"`), &du))
	})

	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		b, err := json.Marshal(struct {
			N googlehealth.Int64
			D googlehealth.Duration
		}{42, googlehealth.Duration(-4 * time.Hour)})
		require.NoError(t, err)
		require.JSONEq(t, `{"N":"42","D":"-14400s"}`, string(b))
	})

	t.Run("Dates", func(t *testing.T) {
		t.Parallel()
		ny, err := time.LoadLocation("America/New_York")
		require.NoError(t, err)
		at := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC) // 22:00 the day before in New York
		require.Equal(t, googlehealth.Date{Year: 2026, Month: 11, Day: 25}, googlehealth.DateOf(at.In(ny)))
		require.Equal(t, "2026-11-25", googlehealth.DateOf(at.In(ny)).String())
		require.True(t, googlehealth.Date{}.IsZero())
		require.Equal(t, time.Date(2026, 11, 25, 0, 0, 0, 0, ny), googlehealth.Date{Year: 2026, Month: 11, Day: 25}.Time(ny))
	})
}

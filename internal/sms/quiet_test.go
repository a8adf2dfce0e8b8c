package sms

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestQuietHours(t *testing.T) {
	t.Parallel()
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	night, err := ParseQuietHours("21:00-08:00")
	require.NoError(t, err)
	lunch, err := ParseQuietHours("12:00-13:00")
	require.NoError(t, err)
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, ny)
		require.NoError(t, err)
		return v
	}
	cases := []struct {
		name string
		q    QuietHours
		now  time.Time
		want time.Time
	}{
		{"DaytimeGoesNow", night, at("2026-11-26 10:00"), at("2026-11-26 10:00")},
		{"LateEveningWaitsForMorning", night, at("2026-11-26 22:30"), at("2026-11-27 08:00")},
		{"EarlyMorningWaitsForEight", night, at("2026-11-27 06:15"), at("2026-11-27 08:00")},
		{"EightSharpGoes", night, at("2026-11-27 08:00"), at("2026-11-27 08:00")},
		{"SameDayWindow", lunch, at("2026-11-26 12:30"), at("2026-11-26 13:00")},
		{"NoWindow", QuietHours{}, at("2026-11-26 23:00"), at("2026-11-26 23:00")},
		// Daylight saving ends 2026-11-01 in New York: 08:00 local is still 08:00 local.
		{"AcrossDSTChange", night, at("2026-10-31 23:00"), at("2026-11-01 08:00")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.True(t, tc.want.Equal(tc.q.Until(tc.now.UTC(), ny)), "got %s", tc.q.Until(tc.now, ny).In(ny))
		})
	}
	for _, bad := range []string{"21-08", "25:00-08:00", "08:00-08:00", "21:00"} {
		_, err := ParseQuietHours(bad)
		require.Error(t, err, bad)
	}
}

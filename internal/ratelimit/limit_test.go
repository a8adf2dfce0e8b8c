package ratelimit

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseLimit(t *testing.T) {
	t.Parallel()

	valid := []struct {
		in    string
		want  Limit
		canon string
	}{
		{"1/s", Limit{N: 1, Period: time.Second, Burst: 1}, "1/s"},
		{"300/min", Limit{N: 300, Period: time.Minute, Burst: 1}, "300/min"},
		{"5000/h", Limit{N: 5000, Period: time.Hour, Burst: 1}, "5000/h"},
		{"1000/d", Limit{N: 1000, Period: 24 * time.Hour, Burst: 1}, "1000/d"},
		{"10/s burst 5", Limit{N: 10, Period: time.Second, Burst: 5}, "10/s burst 5"},
		{"10/s burst 1", Limit{N: 10, Period: time.Second, Burst: 1}, "10/s"},
		{"6000/10m burst 100", Limit{N: 6000, Period: 10 * time.Minute, Burst: 100}, "6000/10m burst 100"},
		{"3/1m30s", Limit{N: 3, Period: 90 * time.Second, Burst: 1}, "3/1m30s"},
		{"1/500ms", Limit{N: 1, Period: 500 * time.Millisecond, Burst: 1}, "1/500ms"},
		{"1/2h0m0s", Limit{N: 1, Period: 2 * time.Hour, Burst: 1}, "1/2h"},
		{"1/1h30m", Limit{N: 1, Period: 90 * time.Minute, Burst: 1}, "1/1h30m"},
		{"1/1s", Limit{N: 1, Period: time.Second, Burst: 1}, "1/s"},
		{"1/24h", Limit{N: 1, Period: 24 * time.Hour, Burst: 1}, "1/d"},
		{"1000000/s burst 10000", Limit{N: 1000000, Period: time.Second, Burst: 10000}, "1000000/s burst 10000"},
	}
	for _, tt := range valid {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseLimit(tt.in)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.canon, got.String())
			again, err := ParseLimit(got.String())
			require.NoError(t, err)
			require.Equal(t, got, again, "String must parse back to the same limit")
		})
	}

	invalid := []string{
		"",
		"1",
		"/s",
		"1/",
		"0/s",
		"-1/s",
		"+1/s",
		"01/s",
		"1.5/s",
		"1e3/s",
		"1 /s",
		"1/ s",
		" 1/s",
		"1/s ",
		"1/S",
		"1/m",
		"1/sec",
		"1/second",
		"1/minute",
		"1/ms",
		"1/-1s",
		"1/0s",
		"1/s burst",
		"1/s burst ",
		"1/s burst 0",
		"1/s burst -1",
		"1/s burst 05",
		"1/s burst 10001",
		"1/s  burst 5",
		"1/s burst  5",
		"1/s burst 5 burst 5",
		"1/s:5",
		"1/s, burst 5",
		"1/s BURST 5",
		"2000000/s",     // faster than one per microsecond
		"1/2d",          // "d" names a period but is no Go duration unit
		"1/25h",         // slower than one a day
		"1234567890/s",  // too many digits
		"1/9999999999h", // duration overflow
	}
	for _, in := range invalid {
		t.Run("invalid "+in, func(t *testing.T) {
			t.Parallel()
			_, err := ParseLimit(in)
			require.Error(t, err)
			require.ErrorIs(t, err, ErrInvalidLimit)
		})
	}
}

func TestLimit(t *testing.T) {
	t.Parallel()

	t.Run("IntervalRoundsUpToMicroseconds", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			l    Limit
			want time.Duration
		}{
			{Limit{N: 1, Period: time.Second, Burst: 1}, time.Second},
			{Limit{N: 300, Period: time.Minute, Burst: 1}, 200 * time.Millisecond},
			{Limit{N: 20, Period: time.Second, Burst: 5}, 50 * time.Millisecond},
			{Limit{N: 3, Period: time.Second, Burst: 1}, 333334 * time.Microsecond},
			{Limit{N: 1000000, Period: time.Second, Burst: 1}, time.Microsecond},
			{Limit{N: 0, Period: time.Second, Burst: 1}, 0},
		} {
			require.Equal(t, tt.want, tt.l.Interval(), "%+v", tt.l)
		}
	})

	t.Run("ValidateRejectsZeroValuesAndOutOfRange", func(t *testing.T) {
		t.Parallel()
		for _, l := range []Limit{
			{},
			{N: 1, Period: time.Second},            // burst 0
			{N: 1, Burst: 1},                       // no period
			{N: -1, Period: time.Second, Burst: 1}, // negative
			{N: 1, Period: time.Second, Burst: MaxBurst + 1},
			{N: 1 << 62, Period: time.Second, Burst: 1},
			{N: 1, Period: 1<<63 - 1, Burst: 1},
		} {
			err := l.Validate()
			require.ErrorIs(t, err, ErrInvalidLimit, "%+v", l)
		}
		require.NoError(t, Limit{N: 1, Period: time.Second, Burst: 1}.Validate())
	})

	t.Run("TextRoundTrip", func(t *testing.T) {
		t.Parallel()
		var l Limit
		require.NoError(t, l.UnmarshalText([]byte("300/min burst 10")))
		require.Equal(t, Limit{N: 300, Period: time.Minute, Burst: 10}, l)
		b, err := l.MarshalText()
		require.NoError(t, err)
		require.Equal(t, "300/min burst 10", string(b))
		err = l.UnmarshalText([]byte("300 per minute"))
		require.True(t, errors.Is(err, ErrInvalidLimit))
		require.Equal(t, Limit{N: 300, Period: time.Minute, Burst: 10}, l, "a failed parse leaves the limit alone")
	})
}

func TestDestination(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		key, want string
	}{
		{"twilio:+15005550006", "twilio"},
		{"google_health:conn_1234", "google_health"},
		{"ehr-epic:endpoint:7", "ehr-epic"},
		{"a:b", "a"},
	} {
		got, err := destination(tt.key)
		require.NoError(t, err, tt.key)
		require.Equal(t, tt.want, got)
	}
	for _, key := range []string{
		"", "twilio", "twilio:", ":x", "Twilio:x", "1twilio:x", "twi lio:x", "twilio.com:x",
		"abcdefghijklmnopqrstuvwxyzabcdefg:x", // destination of 33 characters
		"t:" + string(make([]byte, 199)),      // 201 bytes
	} {
		_, err := destination(key)
		require.ErrorIs(t, err, ErrInvalidKey, "%q", key)
	}
}

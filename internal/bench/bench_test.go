package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSummarize(t *testing.T) {
	t.Parallel()

	t.Run("NearestRankPercentiles", func(t *testing.T) {
		t.Parallel()
		d := make([]time.Duration, 0, 100)
		for i := 100; i >= 1; i-- {
			d = append(d, time.Duration(i)*time.Millisecond)
		}
		s := Summarize(d)
		require.Equal(t, Summary{N: 100, P50: 50, P95: 95, P99: 99, Max: 100}, s)
	})

	t.Run("EmptyIsZero", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, Summary{}, Summarize(nil))
	})
}

func TestSpanRate(t *testing.T) {
	t.Parallel()
	start := time.Unix(1_800_000_000, 0)
	times := make([]time.Time, 0, 1000)
	for i := range 1000 {
		// One every millisecond, with a slow start and tail that the
		// middle 80% leaves out.
		times = append(times, start.Add(time.Duration(i)*time.Millisecond))
	}
	times[0] = start.Add(-time.Hour)
	times[999] = start.Add(time.Hour)
	require.InDelta(t, 1000, spanRate(times), 1)
	require.Zero(t, spanRate(times[:5]))
}

func TestMessageID(t *testing.T) {
	t.Parallel()
	id, ok := messageID([]byte("To=%2B12015550100&Body=x&StatusCallback=http%3A%2F%2F127.0.0.1%3A9%2Fwebhooks%2Ftwilio%2Fstatus%3Fm%3D4242"))
	require.True(t, ok)
	require.EqualValues(t, 4242, id)
	_, ok = messageID([]byte("To=%2B12015550100&Body=x"))
	require.False(t, ok)
}

func TestWithDatabase(t *testing.T) {
	t.Parallel()
	u, err := withDatabase("postgres://u@h:5432/app?sslmode=disable", "bench_x")
	require.NoError(t, err)
	require.Equal(t, "postgres://u@h:5432/bench_x?sslmode=disable", u)
	_, err = withDatabase("host=h dbname=app", "bench_x")
	require.Error(t, err)
}

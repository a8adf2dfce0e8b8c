package units_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/wearables/units"
)

func TestScale(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ value, factor, want string }{
		{"154", "0.45359237", "69.85"}, // float64: 69.85322498000001
		{"180", "0.45359237", "81.65"},
		{"154.0", "0.45359237", "69.853"},
		{"0.97", "100", "97"},
		{"0.975", "100", "97.5"},
		{"1.2", "60", "72"},
		{"69853", "0.001", "69.853"},
		{"500", "0.001", "0.5"},
		{"72", "1", "72"},
		{"7.2e1", "1", "72"},
		{"-3.5", "2", "-7"},
		{"0", "0.45359237", "0"},
		{"1", "0.45359237", "0.45"},
		{"0.3", "3", "0.9"},
	} {
		got, err := units.Scale(c.value, c.factor)
		require.NoError(t, err, c.value)
		require.Equal(t, c.want, got, "%s × %s", c.value, c.factor)
	}
}

func TestParseRefusesWhatIsNotADecimal(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", ".", "-", "NaN", "Inf", "0x10", "1e999", "1e-31", " 1", "1 ", "1.2.3", "1,5", "++1",
		"12345678901234567890123456789012345678901"} {
		_, err := units.Parse(s)
		require.ErrorIs(t, err, units.ErrValue, "%q", s)
	}
}

func TestRound(t *testing.T) {
	t.Parallel()
	require.Equal(t, "69.85", units.MustParse("69.85322498").Round(4).String())
	require.Equal(t, "70", units.MustParse("69.5").Round(2).String())
	require.Equal(t, "-70", units.MustParse("-69.5").Round(2).String())
	require.Equal(t, "100", units.MustParse("99.96").Round(3).String())
	require.Equal(t, "1200", units.MustParse("1234").Round(2).String())
}

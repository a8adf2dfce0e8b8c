package obskind_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/obskind"
)

func TestLoadReadsTheKindsTable(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	ctx := t.Context()
	c, err := obskind.Load(ctx, pool)
	require.NoError(t, err)
	hr, ok := c.Kind("heart_rate")
	require.True(t, ok)
	require.Equal(t, obskind.Kind{Name: "heart_rate", LOINC: "8867-4", Display: "Heart rate", Category: "vital-signs", Units: []string{"/min"}}, hr)
	byCode, ok := c.ByLOINC("8867-4")
	require.True(t, ok)
	require.Equal(t, hr, byCode)
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM switchboard.observation_kinds`).Scan(&n))
	require.Len(t, c.Names(), n)
	require.IsIncreasing(t, c.Names())

	t.Run("SourceReadsOnce", func(t *testing.T) {
		s := obskind.NewSource(pool)
		first, err := s.Get(ctx)
		require.NoError(t, err)
		again, err := s.Get(ctx)
		require.NoError(t, err)
		require.Same(t, first, again)
	})
}

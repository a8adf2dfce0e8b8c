package worker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/worker"
	"github.com/switchboard-health/switchboard/jobs"
)

func TestUnavailableLimits(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	ctx := t.Context()

	limits, err := worker.UnavailableLimits(ctx, pool)
	require.NoError(t, err)
	var kinds int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM switchboard.job_kinds`).Scan(&kinds))
	require.Len(t, limits, kinds, "every kind")
	var seconds float64
	require.NoError(t, pool.QueryRow(ctx, `SELECT extract(epoch FROM unavailable_limit) FROM switchboard.job_kinds WHERE kind = $1`,
		jobs.KindSMSSend).Scan(&seconds))
	require.Equal(t, time.Duration(seconds*float64(time.Second)), limits[jobs.KindSMSSend])

	// Months, days and time of day all count (a month as 30 days).
	_, err = pool.Exec(ctx, `UPDATE switchboard.job_kinds SET unavailable_limit = '1 mon 2 days 03:04:05' WHERE kind = $1`, jobs.KindFHIRPush)
	require.NoError(t, err)
	limits, err = worker.UnavailableLimits(ctx, pool)
	require.NoError(t, err)
	require.Equal(t, 32*24*time.Hour+3*time.Hour+4*time.Minute+5*time.Second, limits[jobs.KindFHIRPush])

	// A database without the table is an error that says what to check.
	_, err = pool.Exec(ctx, `DROP TABLE switchboard.job_kinds CASCADE`)
	require.NoError(t, err)
	_, err = worker.UnavailableLimits(ctx, pool)
	require.ErrorContains(t, err, "is the database migrated?")
}

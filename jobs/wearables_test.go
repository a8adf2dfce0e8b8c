package jobs_test

import (
	"testing"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/jobs"
)

func TestWearablesInsertOptsMatchJobKinds(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	for _, args := range []interface {
		river.JobArgs
		InsertOpts() river.InsertOpts
	}{
		jobs.WearableSyncArgs{}, jobs.WearableBackfillArgs{}, jobs.WearableNotificationArgs{}, jobs.WearableSummarizeArgs{},
		jobs.WearablePollArgs{}, jobs.WearableRevokeArgs{}, jobs.AppleHealthIngestArgs{},
	} {
		var queue string
		var priority, maxAttempts int
		require.NoError(t, pool.QueryRow(t.Context(), "SELECT queue, priority, max_attempts FROM switchboard.job_kinds WHERE kind = $1", args.Kind()).
			Scan(&queue, &priority, &maxAttempts), args.Kind())
		opts := args.InsertOpts()
		require.Equal(t, queue, opts.Queue, args.Kind())
		require.Equal(t, priority, opts.Priority, args.Kind())
		require.Equal(t, maxAttempts, opts.MaxAttempts, args.Kind())
	}
}

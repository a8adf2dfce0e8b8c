package wearables_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/googlehealth"
	"github.com/switchboard-health/switchboard/internal/ratelimit"
	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/internal/wearables"
	"github.com/switchboard-health/switchboard/jobs"
)

// TestSyncHoldsSayWhy: a sync held without spending an attempt records why
// in its metadata, where River UI shows it: the per-user rate limit and
// Google's 429 are told apart, with the destination and until when.
func TestSyncHoldsSayWhy(t *testing.T) {
	t.Parallel()

	type hold struct {
		State       string
		Reason      string
		Destination string
		Until       time.Time
		ScheduledAt time.Time
	}
	// syncHeld enqueues one weight sync, works the queue and returns the
	// held job's state and hold metadata.
	syncHeld := func(t *testing.T, b *testBundle, id int64) hold {
		t.Helper()
		day := time.Now().UTC().Truncate(24 * time.Hour)
		require.NoError(t, pgx.BeginFunc(t.Context(), b.pool, func(tx pgx.Tx) error {
			_, err := b.client.InsertTx(t.Context(), tx, jobs.WearableSyncArgs{ConnectionID: id, DataType: googlehealth.TypeWeight,
				Start: day, End: day.Add(24 * time.Hour)}, nil)
			return err
		}))
		b.runJobs(t)
		var (
			h     hold
			until string
		)
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT state::text, coalesce(metadata->>$1, ''), coalesce(metadata->>$2, ''),
				coalesce(metadata->>$3, ''), scheduled_at
			FROM switchboard.river_job WHERE kind = 'wearable_sync'`,
			resilience.MetadataHoldReason, resilience.MetadataHoldDestination, resilience.MetadataHoldUntil).
			Scan(&h.State, &h.Reason, &h.Destination, &until, &h.ScheduledAt))
		if until != "" {
			var err error
			h.Until, err = time.Parse(time.RFC3339, until)
			require.NoError(t, err)
		}
		return h
	}

	t.Run("PerUserRateLimit", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *wearables.Config) {
			c.DataTypes = []string{googlehealth.TypeWeight}
			c.UserRateLimit = "1/h"
		})
		id := b.connect(t)
		exec(t, b.pool, "DELETE FROM switchboard.river_job")
		wait, err := ratelimit.New(b.pool).Take(t.Context(), "google_health:"+testUser, ratelimit.Limit{N: 1, Period: time.Hour, Burst: 1})
		require.NoError(t, err)
		require.Zero(t, wait)

		h := syncHeld(t, b, id)
		require.Equal(t, "scheduled", h.State)
		require.Equal(t, resilience.HoldRateLimit, h.Reason)
		require.Equal(t, googlehealth.Provider, h.Destination)
		require.WithinDuration(t, h.ScheduledAt, h.Until, 2*time.Second, "hold_until is when the job comes back")
	})

	t.Run("GoogleAnswered429", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *wearables.Config) { c.DataTypes = []string{googlehealth.TypeWeight} })
		id := b.connect(t)
		exec(t, b.pool, "DELETE FROM switchboard.river_job")
		b.sb.Fail("/v4/users/", http.StatusTooManyRequests, 1, 7*time.Minute)
		before := time.Now()

		h := syncHeld(t, b, id)
		require.Equal(t, "scheduled", h.State)
		require.Equal(t, resilience.HoldThrottled, h.Reason)
		require.Equal(t, googlehealth.Provider, h.Destination)
		require.WithinDuration(t, h.ScheduledAt, h.Until, 2*time.Second, "hold_until is when the job comes back")
		require.False(t, h.Until.Before(before.Add(7*time.Minute).Truncate(time.Second)), "Retry-After is honoured")
		require.Equal(t, 0, count(t, b.pool, "SELECT consecutive_failures FROM switchboard.device_connections WHERE id = $1", id),
			"a hold is not a failure of the connection")
	})

	// A Retry-After of 31 years holds the sync for an hour at most
	// (resilience.MaxThrottleWait); it used to park it for the 31 years.
	t.Run("GoogleAnswered429ForYears", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *wearables.Config) { c.DataTypes = []string{googlehealth.TypeWeight} })
		id := b.connect(t)
		exec(t, b.pool, "DELETE FROM switchboard.river_job")
		b.sb.Fail("/v4/users/", http.StatusTooManyRequests, 1, 999999999*time.Second)
		before := time.Now()

		h := syncHeld(t, b, id)
		require.Equal(t, "scheduled", h.State)
		require.Equal(t, resilience.HoldThrottled, h.Reason)
		require.False(t, h.Until.Before(before.Add(time.Hour).Truncate(time.Second)), "held for the cap")
		require.False(t, h.ScheduledAt.After(time.Now().Add(time.Hour)), "scheduled within the hour, not at %s", h.ScheduledAt)
	})
}

// TestSyncOutcomes: our own permanent failures end in a dead letter marked
// permanent, without touching the connection's failure count.
func TestSyncOutcomes(t *testing.T) {
	t.Parallel()

	// outcome inserts args, works the queue and returns the job's state,
	// its outcome_class and the connection's consecutive failures.
	outcome := func(t *testing.T, b *testBundle, id int64, args jobs.WearableSyncArgs) (state, class string, failures int) {
		t.Helper()
		require.NoError(t, pgx.BeginFunc(t.Context(), b.pool, func(tx pgx.Tx) error {
			_, err := b.client.InsertTx(t.Context(), tx, args, nil)
			return err
		}))
		b.runJobs(t)
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT state::text, coalesce(metadata->>'outcome_class', '')
			FROM switchboard.river_job WHERE kind = 'wearable_sync'`).Scan(&state, &class))
		failures = count(t, b.pool, "SELECT consecutive_failures FROM switchboard.device_connections WHERE id = $1", id)
		return state, class, failures
	}
	day := time.Now().UTC().Truncate(24 * time.Hour)

	for name, tc := range map[string]struct {
		args  func(id int64) jobs.WearableSyncArgs
		fault int // HTTP status the API answers, 0: none
	}{
		"ConnectionGone": {args: func(int64) jobs.WearableSyncArgs {
			return jobs.WearableSyncArgs{ConnectionID: 1 << 40, DataType: googlehealth.TypeWeight, Start: day, End: day.Add(24 * time.Hour)}
		}},
		"DataTypeNotRead": {args: func(id int64) jobs.WearableSyncArgs {
			return jobs.WearableSyncArgs{ConnectionID: id, DataType: "blood-pressure", Start: day, End: day.Add(24 * time.Hour)}
		}},
		"GoogleCallsOurRequestInvalid": {fault: http.StatusBadRequest, args: func(id int64) jobs.WearableSyncArgs {
			return jobs.WearableSyncArgs{ConnectionID: id, DataType: googlehealth.TypeWeight, Start: day, End: day.Add(24 * time.Hour)}
		}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(c *wearables.Config) { c.DataTypes = []string{googlehealth.TypeWeight} })
			id := b.connect(t)
			exec(t, b.pool, "DELETE FROM switchboard.river_job")
			if tc.fault != 0 {
				b.sb.Fail("/v4/users/", tc.fault, 1, 0)
			}
			state, class, failures := outcome(t, b, id, tc.args(id))
			require.Equal(t, "cancelled", state)
			require.Equal(t, "permanent", class)
			require.Zero(t, failures)
		})
	}
}

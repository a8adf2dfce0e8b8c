package database_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
)

func TestMigrations(t *testing.T) {
	t.Parallel()

	t.Run("RiverValidatesTheGooseBuiltSchema", func(t *testing.T) {
		t.Parallel()
		pool, _ := dbtest.NewPool(t)
		ctx := context.Background()
		m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: "switchboard"})
		require.NoError(t, err)
		res, err := m.Validate(ctx, nil)
		require.NoError(t, err)
		require.True(t, res.OK, "river reports: %v", res.Messages)

		var versions []int64
		rows, err := pool.Query(ctx, "SELECT version FROM switchboard.river_migration WHERE line = 'main' ORDER BY version")
		require.NoError(t, err)
		versions, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(t, err)
		all := m.AllVersions()
		require.Len(t, versions, len(all))
		require.Equal(t, int64(all[len(all)-1].Version), versions[len(versions)-1])
	})

	t.Run("UpDownUpAgain", func(t *testing.T) {
		t.Parallel()
		url := dbtest.NewDatabase(t)
		ctx := context.Background()
		st, err := database.Status(ctx, url)
		require.NoError(t, err)
		n := len(st)
		for i := 0; i < n; i++ {
			_, err := database.Migrate(ctx, url, database.Down, nil)
			require.NoError(t, err, "down step %d", i)
		}
		st, err = database.Status(ctx, url)
		require.NoError(t, err)
		for _, s := range st {
			require.False(t, s.Applied, "version %d still applied", s.Version)
		}
		applied, err := database.Migrate(ctx, url, database.Up, nil)
		require.NoError(t, err)
		require.Len(t, applied, n)

		pool, err := database.Open(ctx, database.Config{URL: url, MaxConns: 2})
		require.NoError(t, err)
		defer pool.Close()
		m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: "switchboard"})
		require.NoError(t, err)
		res, err := m.Validate(ctx, nil)
		require.NoError(t, err)
		require.True(t, res.OK)
	})

	t.Run("ConcurrentMigratorsTakeTurns", func(t *testing.T) {
		t.Parallel()
		url := dbtest.NewDatabase(t)
		ctx := context.Background()
		st, err := database.Status(ctx, url)
		require.NoError(t, err)
		for range st {
			_, err := database.Migrate(ctx, url, database.Down, nil)
			require.NoError(t, err)
		}
		// Without goose's advisory lock the second and third migrator would
		// run the same CREATE statements and fail.
		var wg sync.WaitGroup
		errs := make([]error, 3)
		counts := make([]int, 3)
		for i := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := database.Migrate(ctx, url, database.Up, nil)
				errs[i], counts[i] = err, len(v)
			}()
		}
		wg.Wait()
		total := 0
		for i := range 3 {
			require.NoError(t, errs[i])
			total += counts[i]
		}
		require.Equal(t, len(st), total, "every migration applied exactly once")
	})
}

package database_test

import (
	"context"
	"io/fs"
	"regexp"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/migrations"
)

// TestMigrationNumbering holds the numbering decision of docs/design.md
// ("Migrations"): versions are applied strictly in order, so every new
// migration is numbered above main's newest when it merges.
func TestMigrationNumbering(t *testing.T) {
	t.Parallel()

	t.Run("FiveDigitsUniqueStrictlyIncreasing", func(t *testing.T) {
		t.Parallel()
		entries, err := fs.ReadDir(migrations.FS, ".")
		require.NoError(t, err)
		name := regexp.MustCompile(`^([0-9]{5})_[a-z0-9_]+\.sql$`)
		prev := int64(-1)
		n := 0
		for _, e := range entries { // ReadDir sorts by name: goose's and sqlc's order
			m := name.FindStringSubmatch(e.Name())
			require.NotNil(t, m, "%s is not NNNNN_snake_name.sql", e.Name())
			v, err := strconv.ParseInt(m[1], 10, 64)
			require.NoError(t, err)
			require.Greater(t, v, prev, "%s does not come after version %05d", e.Name(), prev)
			prev = v
			n++
		}
		require.Positive(t, n)
	})

	// A migration that lands numbered below one a database already has (a
	// branch's 00085 merged after main's 00090 was deployed) is refused,
	// not slipped in out of order: goose is not configured to allow missing
	// migrations.
	t.Run("AMissingLowerVersionIsRefused", func(t *testing.T) {
		t.Parallel()
		url := dbtest.NewDatabase(t)
		ctx := context.Background()
		st, err := database.Status(ctx, database.Config{URL: url})
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(st), 2)
		missing := st[len(st)-2].Version

		conn, err := pgx.Connect(ctx, url)
		require.NoError(t, err)
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "DELETE FROM switchboard_goose_db_version WHERE version_id = $1", missing)
		require.NoError(t, err)

		applied, err := database.Migrate(ctx, database.Config{URL: url}, database.Up, nil)
		require.ErrorContains(t, err, "missing (out-of-order)")
		require.Empty(t, applied)
		var n int
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM switchboard_goose_db_version WHERE version_id = $1", missing).Scan(&n))
		require.Zero(t, n, "version %d was applied out of order", missing)
	})
}

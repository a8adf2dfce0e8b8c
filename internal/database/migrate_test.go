package database_test

import (
	"context"
	"io"
	"net"
	neturl "net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/database/pgbouncertest"
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
		// A session advisory lock taken through the pooler would stay with
		// whichever server connection ran it; goose's table lock does not.
		url := emptiedDatabase(t)
		through := database.Config{URL: pgbouncertest.Start(t, url), PoolMode: database.PoolTransaction}
		migrateConcurrently(t, through)
		ctx := context.Background()
		after, err := database.Status(ctx, through)
		require.NoError(t, err)
		for _, s := range after {
			require.True(t, s.Applied, "version %d", s.Version)
		}
	})

	t.Run("QueriesNeverDependOnTheServerConnection", func(t *testing.T) {
		t.Parallel()
		url := dbtest.NewDatabase(t)
		ctx := context.Background()
		pool, err := database.Open(ctx, database.Config{URL: pgbouncertest.Start(t, url), PoolMode: database.PoolTransaction, MaxConns: 8})
		require.NoError(t, err)
		defer pool.Close()
		// Many clients, the same parameterised statements, server
		// connections shared by turns: named prepared statements would fail
		// here with "prepared statement … does not exist".
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 50 {
					var n int64
					if err := pool.QueryRow(ctx, "SELECT count(*) + $1::bigint FROM switchboard.river_job WHERE kind = $2", int64(w*i), "none").Scan(&n); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	})

	t.Run("UnknownPoolModeIsRefused", func(t *testing.T) {
		t.Parallel()
		_, err := database.Open(context.Background(), database.Config{URL: "postgres://x@127.0.0.1:1/x", PoolMode: "statement"})
		require.ErrorContains(t, err, "DATABASE_POOL_MODE")
	})
}

// emptiedDatabase is a fresh database with every migration rolled back.
func emptiedDatabase(t *testing.T) string {
	url := dbtest.NewDatabase(t)
	ctx := context.Background()
	st, err := database.Status(ctx, database.Config{URL: url})
	require.NoError(t, err)
	for range st {
		_, err := database.Migrate(ctx, database.Config{URL: url}, database.Down, nil)
		require.NoError(t, err)
	}
	return url
}

// migrateConcurrently runs three migrators at once on cfg and checks that
// every migration was applied exactly once between them.
func migrateConcurrently(t *testing.T, cfg database.Config) {
	ctx := context.Background()
	st, err := database.Status(ctx, cfg)
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	counts := make([]int, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := database.Migrate(ctx, cfg, database.Up, nil)
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
}

// TestOpenWaitsForAServerThatIsNotUpYet: a worker started while PostgreSQL
// restarts waits for it (WaitForServer) instead of exiting; without the wait
// the first refused connection ends Open.
func TestOpenWaitsForAServerThatIsNotUpYet(t *testing.T) {
	t.Parallel()
	url := dbtest.NewDatabase(t)
	up, err := neturl.Parse(url)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	// The first three connections are cut at once, as by a server that is
	// restarting; later ones are relayed to the real server.
	var refused atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if refused.Add(1) <= 3 {
				c.Close()
				continue
			}
			go func() {
				defer c.Close()
				s, err := net.Dial("tcp", up.Host)
				if err != nil {
					return
				}
				defer s.Close()
				go func() { _, _ = io.Copy(s, c) }()
				_, _ = io.Copy(c, s)
			}()
		}
	}()
	through := *up
	through.Host = ln.Addr().String()

	_, err = database.Open(context.Background(), database.Config{URL: through.String()})
	require.Error(t, err, "without a wait the first refused connection ends Open")

	pool, err := database.Open(context.Background(), database.Config{URL: through.String(), WaitForServer: time.Minute})
	require.NoError(t, err)
	pool.Close()
	require.Greater(t, refused.Load(), int32(3))
}

package database_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/database"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
)

func pipePool(t *testing.T) (*pgxpool.Pool, *dbtest.Sent) {
	t.Helper()
	sent := &dbtest.Sent{}
	pool := dbtest.TracedPool(t, dbtest.NewDatabase(t), sent)
	_, err := pool.Exec(t.Context(), `CREATE TABLE pipe (k text PRIMARY KEY, n int, u int UNIQUE DEFERRABLE INITIALLY DEFERRED)`)
	require.NoError(t, err)
	sent.Reset()
	return pool, sent
}

func insert(k string, n int) database.Step {
	return func(q db.DBTX) error {
		_, err := q.Exec(context.Background(), `INSERT INTO pipe (k, n) VALUES ($1, $2)`, k, n)
		return err
	}
}

func keys(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT k FROM pipe ORDER BY k`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// openTransactions counts the database's other connections that sit in a
// transaction.
func openTransactions(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'`).Scan(&n))
	return n
}

// noTransactionLeftOpen: no connection of the database sits in a
// transaction (a failed pipe's connection is rolled back or closed).
func noTransactionLeftOpen(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	require.Zero(t, openTransactions(t, pool))
}

func TestInPipe(t *testing.T) {
	t.Parallel()

	t.Run("EachSendIsOneBatchWithBeginFirstAndCommitLast", func(t *testing.T) {
		t.Parallel()
		pool, rt := pipePool(t)
		var seen, sum int
		err := database.InPipe(t.Context(), pool, func(p *database.Pipe) error {
			// Later statements of one Send see what earlier ones wrote.
			if err := p.Send(t.Context(), insert("a", 1), insert("b", 2), func(q db.DBTX) error {
				return q.QueryRow(context.Background(), `SELECT count(*) FROM pipe`).Scan(&seen)
			}); err != nil {
				return err
			}
			return p.Commit(t.Context(), insert("c", 3), func(q db.DBTX) error {
				return q.QueryRow(context.Background(), `SELECT sum(n) FROM pipe`).Scan(&sum)
			})
		})
		require.NoError(t, err)
		batches, lones := rt.Seen()
		require.Len(t, batches, 2, "one batch per Send or Commit")
		require.Zero(t, lones, "nothing sent on its own")
		require.Equal(t, "begin", batches[0].SQL[0])
		require.Len(t, batches[0].SQL, 4)
		require.Equal(t, "commit", batches[1].SQL[len(batches[1].SQL)-1])
		require.Len(t, batches[1].SQL, 3)
		require.Equal(t, 2, seen)
		require.Equal(t, 6, sum)
		require.Equal(t, []string{"a", "b", "c"}, keys(t, pool))
	})

	t.Run("WithoutCommitTheTransactionCommitsAlone", func(t *testing.T) {
		t.Parallel()
		pool, rt := pipePool(t)
		require.NoError(t, database.InPipe(t.Context(), pool, func(p *database.Pipe) error {
			return p.Send(t.Context(), insert("a", 1))
		}))
		batches, _ := rt.Seen()
		require.Len(t, batches, 2, "the statements, then the commit")
		require.Equal(t, []string{"a"}, keys(t, pool))
		noTransactionLeftOpen(t, pool)
	})

	t.Run("AFailingStatementLeavesNothing", func(t *testing.T) {
		t.Parallel()
		pool, _ := pipePool(t)
		err := database.InPipe(t.Context(), pool, func(p *database.Pipe) error {
			if err := p.Send(t.Context(), insert("a", 1)); err != nil {
				return err
			}
			return p.Commit(t.Context(), insert("b", 2), insert("a", 3), insert("c", 4))
		})
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		require.Equal(t, "23505", pgErr.Code)
		require.Empty(t, keys(t, pool), "the statements before the failure are rolled back too")
		noTransactionLeftOpen(t, pool)
	})

	t.Run("AFailingCommitIsReported", func(t *testing.T) {
		t.Parallel()
		pool, _ := pipePool(t)
		// The deferred unique constraint fails at COMMIT, not at the insert.
		err := database.InPipe(t.Context(), pool, func(p *database.Pipe) error {
			return p.Commit(t.Context(), func(q db.DBTX) error {
				_, err := q.Exec(context.Background(), `INSERT INTO pipe (k, u) VALUES ('a', 1), ('b', 1)`)
				return err
			})
		})
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		require.Equal(t, "23505", pgErr.Code)
		require.Empty(t, keys(t, pool))
		noTransactionLeftOpen(t, pool)
	})

	t.Run("AnErrorOfTheCallerRollsBack", func(t *testing.T) {
		t.Parallel()
		pool, _ := pipePool(t)
		mine := errors.New("decided against it")
		err := database.InPipe(t.Context(), pool, func(p *database.Pipe) error {
			if err := p.Send(t.Context(), insert("a", 1)); err != nil {
				return err
			}
			return mine
		})
		require.ErrorIs(t, err, mine)
		require.Empty(t, keys(t, pool))
		noTransactionLeftOpen(t, pool)
	})

	t.Run("AStepMustRunExactlyOneQuery", func(t *testing.T) {
		t.Parallel()
		pool, rt := pipePool(t)
		for _, step := range []database.Step{
			func(db.DBTX) error { return nil },
			func(q db.DBTX) error {
				if err := insert("a", 1)(q); err != nil {
					return err
				}
				return insert("b", 2)(q)
			},
		} {
			err := database.InPipe(t.Context(), pool, func(p *database.Pipe) error {
				return p.Commit(t.Context(), insert("c", 3), step)
			})
			require.ErrorContains(t, err, "pipeline step 1 ran")
		}
		require.Empty(t, keys(t, pool))
		batches, _ := rt.Seen()
		require.Empty(t, batches, "nothing was sent")
	})

	t.Run("NothingAfterCommit", func(t *testing.T) {
		t.Parallel()
		pool, _ := pipePool(t)
		err := database.InPipe(t.Context(), pool, func(p *database.Pipe) error {
			if err := p.Commit(t.Context(), insert("a", 1)); err != nil {
				return err
			}
			return p.Send(t.Context(), insert("b", 2))
		})
		require.ErrorContains(t, err, "already ended")
		require.Equal(t, []string{"a"}, keys(t, pool), "what committed stays")
	})
}

// A pipe whose context ends while a batch runs returns the context's error;
// what it wrote is rolled back and its connection is not handed out again
// in a transaction.
func TestInPipeCancelled(t *testing.T) {
	t.Parallel()
	pool, _ := pipePool(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	started := make(chan struct{})
	go func() {
		// Cancel once the slow statement is running on the server.
		<-started
		for ctx.Err() == nil {
			var n int
			err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()`).Scan(&n)
			if err == nil && n > 0 {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	err := database.InPipe(ctx, pool, func(p *database.Pipe) error {
		close(started)
		return p.Commit(ctx, insert("a", 1), func(q db.DBTX) error {
			_, err := q.Exec(context.Background(), `SELECT pg_sleep(30)`)
			return err
		})
	})
	require.ErrorIs(t, err, context.Canceled)
	require.Empty(t, keys(t, pool))
	// The cancelled batch's connection is never reused in its transaction:
	// the server ends the transaction once the connection is rolled back or
	// closed, which may come a moment after InPipe returns.
	require.Eventually(t, func() bool { return openTransactions(t, pool) == 0 }, time.Minute, 10*time.Millisecond)
	// The pool still works.
	require.NoError(t, database.InPipe(t.Context(), pool, func(p *database.Pipe) error { return p.Commit(t.Context(), insert("b", 2)) }))
	require.Equal(t, []string{"b"}, keys(t, pool))
}

// GenericPlans holds for the pipe's transaction only: the connection goes
// back to the pool with the session's own plan_cache_mode.
func TestInPipeGenericPlans(t *testing.T) {
	t.Parallel()
	// One connection, so that the pipe and the check after it share it.
	pool := dbtest.TracedPool(t, dbtest.NewDatabase(t)+"&pool_max_conns=1", &dbtest.Sent{})
	setting := func(into *string) database.Step {
		return func(q db.DBTX) error {
			return q.QueryRow(context.Background(), `SELECT current_setting('plan_cache_mode')`).Scan(into)
		}
	}
	var inside, plain string
	require.NoError(t, database.InPipe(t.Context(), pool, func(p *database.Pipe) error {
		return p.Commit(t.Context(), setting(&inside))
	}, database.GenericPlans()))
	require.Equal(t, "force_generic_plan", inside)
	require.NoError(t, database.InPipe(t.Context(), pool, func(p *database.Pipe) error {
		return p.Commit(t.Context(), setting(&plain))
	}))
	require.Equal(t, "auto", plain, "SET LOCAL: gone with the transaction")
}

package database_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database"
	"github.com/switchboard-health/switchboard/internal/database/dbtest"
)

// Unavailable tells a server that went away from an answer, on errors a
// real server and a real dial produce.
func TestUnavailable(t *testing.T) {
	ctx := context.Background()
	url := dbtest.NewDatabase(t)

	_, err := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:1/none?connect_timeout=5")
	require.Error(t, err)
	require.True(t, database.Unavailable(err), "a refused dial: %v", err)

	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "SELEC 1")
	require.Error(t, err)
	require.False(t, database.Unavailable(err), "a syntax error: %v", err)
	_, err = conn.Exec(ctx, "SELECT 1/0")
	require.False(t, database.Unavailable(err), "division by zero: %v", err)

	// A backend terminated under its session, as a restart does.
	victim, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer victim.Close(ctx)
	_, err = conn.Exec(ctx, "SELECT pg_terminate_backend($1)", victim.PgConn().PID())
	require.NoError(t, err)
	_, err = victim.Exec(ctx, "SELECT 1")
	require.Error(t, err)
	require.True(t, database.Unavailable(err), "a terminated backend: %v", err)

	require.False(t, database.Unavailable(errors.New("SMS_PROVIDERS names twilio twice")), "a mistake of ours")
	require.False(t, database.Unavailable(nil))
	require.True(t, database.Unavailable(fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "57P03"})), "starting up")
}

// WhileUnavailable tries again only what waiting can fix, and only within
// its wait.
func TestWhileUnavailable(t *testing.T) {
	ctx := context.Background()
	down := &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}

	calls := 0
	err := database.WhileUnavailable(ctx, time.Minute, func(context.Context) error {
		calls++
		if calls < 3 {
			return down
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 3, calls, "tried until the server answered")

	calls = 0
	mistake := errors.New("bad configuration")
	err = database.WhileUnavailable(ctx, time.Minute, func(context.Context) error { calls++; return mistake })
	require.ErrorIs(t, err, mistake)
	require.Equal(t, 1, calls, "an answer is not tried again")

	calls = 0
	err = database.WhileUnavailable(ctx, 0, func(context.Context) error { calls++; return down })
	require.ErrorIs(t, err, down)
	require.Equal(t, 1, calls, "no wait: tried once")
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-health/switchboard/internal/database"
	"github.com/switchboard-health/switchboard/internal/envvars"
	"github.com/switchboard-health/switchboard/internal/logging"
	"github.com/switchboard-health/switchboard/internal/telemetry"
)

// base is what every command that touches the database reads.
type base struct {
	DatabaseURL string `env:"DATABASE_URL"`
	// PoolMode is "transaction" behind PgBouncer's transaction pooling
	// (see internal/database.PoolTransaction); any value but "session" or
	// "transaction" is a configuration error (database.PoolMode.EnvDecode).
	PoolMode database.PoolMode `env:"DATABASE_POOL_MODE, default=session"`
	Log      logging.Config

	waitForServer time.Duration // set by openServicePool
}

// database is the connection configuration every command shares.
func (b base) database() database.Config {
	return database.Config{URL: b.DatabaseURL, PoolMode: b.PoolMode, WaitForServer: b.waitForServer}
}

// pollOnly reports whether River must poll instead of LISTENing: LISTEN
// needs a session of its own, which a transaction pooler does not keep.
func (b base) pollOnly() bool { return b.PoolMode == database.PoolTransaction }

// load reads the environment into each of targets, reporting every bad or
// missing variable by name at once (internal/envvars).
func load(ctx context.Context, targets ...any) error {
	if err := envvars.Load(ctx, targets...); err != nil {
		var e *envvars.Error
		if errors.As(err, &e) {
			return usageError{msg: err.Error()}
		}
		return fmt.Errorf("configuration: %w", err)
	}
	return nil
}

func newLogger(cfg logging.Config, w io.Writer) (*slog.Logger, error) {
	return logging.New(cfg, w)
}

func openPool(ctx context.Context, b base, maxConns int32) (*pgxpool.Pool, error) {
	if b.DatabaseURL == "" {
		return nil, usageError{msg: "DATABASE_URL is not set"}
	}
	cfg := b.database()
	cfg.MaxConns = maxConns
	return database.Open(ctx, cfg)
}

// serviceStartWait is how long the long-running worker and api wait, while
// they start, for a database that is restarting or failing over.
const serviceStartWait = time.Minute

// openServicePool is openPool for the long-running worker and api: a
// database that is restarting or failing over when they start is waited for
// (up to serviceStartWait) instead of ending the process.
func openServicePool(ctx context.Context, b base, maxConns int32) (*pgxpool.Pool, error) {
	b.waitForServer = serviceStartWait
	return openPool(ctx, b, maxConns)
}

func actor() string {
	if a := os.Getenv("SWITCHBOARD_ACTOR"); a != "" {
		return a
	}
	user := os.Getenv("USER")
	if user == "" {
		user = "unknown"
	}
	host, _ := os.Hostname()
	return user + "@" + host
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

// sqlUserError shows a SQL API's 22023 message as a plain usage error.
func sqlUserError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "22023" {
		return usageError{msg: pgErr.Message}
	}
	return err
}

// openBasePool reads the base configuration and opens a small pool, for
// the operator commands.
func openBasePool(e *env) (*pgxpool.Pool, error) {
	var b base
	if err := load(e.ctx, &b); err != nil {
		return nil, err
	}
	return openPool(e.ctx, b, 2)
}

// startTracing turns OpenTelemetry on when the OTEL_* environment asks for it
// (internal/telemetry); the returned function flushes what is buffered.
func startTracing(ctx context.Context, service string) (func(), error) {
	shutdown, err := telemetry.Setup(ctx, service)
	if err != nil {
		return nil, usageError{msg: err.Error()}
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = shutdown(ctx)
	}, nil
}

// Package database opens Switchboard's PostgreSQL pool and runs its
// migrations.
package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/switchboard-health/switchboard/migrations"
)

// Config sizes the pool. Zero values take pgx's defaults, which on a 2-core
// machine means 4 connections: far too few for River plus the workers, so
// every command sets MaxConns deliberately.
type Config struct {
	URL      string
	MaxConns int32
	MinConns int32
}

// Open connects a pool and pings it. It returns an error when the URL does
// not parse or the database cannot be reached.
func Open(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	if cfg.URL == "" {
		return nil, errors.New("DATABASE_URL is not set")
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("error parsing DATABASE_URL: %w", err)
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	if cfg.MinConns > 0 {
		pc.MinConns = cfg.MinConns
	}
	pc.MaxConnIdleTime = 5 * time.Minute
	pc.HealthCheckPeriod = 15 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("error creating pool: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("error connecting to database: %w", err)
	}
	return pool, nil
}

// Direction says which way Migrate goes.
type Direction string

// Migration directions: Up applies every pending migration, Down rolls back
// exactly one.
const (
	Up   Direction = "up"
	Down Direction = "down"
)

// Migrate runs the embedded goose migrations against url while holding
// goose's PostgreSQL advisory lock, so replicas that start together take turns.
// It returns the versions applied or rolled back.
func Migrate(ctx context.Context, url string, dir Direction, logger *slog.Logger) ([]int64, error) {
	provider, db, err := newProvider(url, logger)
	if err != nil {
		return nil, err
	}
	defer db.Close()

	var results []*goose.MigrationResult
	switch dir {
	case Up:
		results, err = provider.Up(ctx)
	case Down:
		var r *goose.MigrationResult
		r, err = provider.Down(ctx)
		if r != nil {
			results = append(results, r)
		}
	default:
		return nil, fmt.Errorf("unknown migration direction %q", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("error migrating %s: %w", dir, err)
	}
	versions := make([]int64, 0, len(results))
	for _, r := range results {
		versions = append(versions, r.Source.Version)
	}
	return versions, nil
}

// MigrationStatus is one migration and whether it is applied.
type MigrationStatus struct {
	Version   int64
	Name      string
	Applied   bool
	AppliedAt time.Time
}

// Status lists every embedded migration and whether the database has it.
func Status(ctx context.Context, url string) ([]MigrationStatus, error) {
	provider, db, err := newProvider(url, nil)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	st, err := provider.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("error reading migration status: %w", err)
	}
	out := make([]MigrationStatus, 0, len(st))
	for _, s := range st {
		out = append(out, MigrationStatus{
			Version:   s.Source.Version,
			Name:      s.Source.Path,
			Applied:   s.State == goose.StateApplied,
			AppliedAt: s.AppliedAt,
		})
	}
	return out, nil
}

func newProvider(url string, logger *slog.Logger) (*goose.Provider, *sql.DB, error) {
	if url == "" {
		return nil, nil, errors.New("DATABASE_URL is not set")
	}
	cc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, nil, fmt.Errorf("error parsing DATABASE_URL: %w", err)
	}
	db := stdlib.OpenDB(*cc.ConnConfig)
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("error creating migration lock: %w", err)
	}
	opts := []goose.ProviderOption{
		goose.WithTableName(migrations.TableName),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	}
	if logger != nil {
		// goose logs every statement at info; keep only its warnings.
		opts = append(opts, goose.WithSlog(slog.New(levelFloor{logger.Handler(), slog.LevelWarn})))
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, opts...)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("error loading migrations: %w", err)
	}
	return provider, db, nil
}

// levelFloor drops records below its level.
type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (h levelFloor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

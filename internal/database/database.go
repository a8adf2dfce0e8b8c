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

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/switchboard-health/switchboard/internal/telemetry"
	"github.com/switchboard-health/switchboard/migrations"
)

// Config sizes the pool. Zero values take pgx's defaults, which on a 2-core
// machine means 4 connections: far too few for River plus the workers, so
// every command sets MaxConns deliberately.
type Config struct {
	URL      string
	MaxConns int32
	MinConns int32
	// PoolMode says what sits between Switchboard and PostgreSQL
	// (DATABASE_POOL_MODE); empty means PoolSession.
	PoolMode PoolMode
	// WaitForServer keeps Open retrying a server that cannot be reached
	// (restarting, failing over) for this long before it gives up; zero
	// tries once. Long-running services set it, one-shot commands do not.
	WaitForServer time.Duration
}

// PoolMode is how connections reach PostgreSQL.
type PoolMode string

const (
	// PoolSession: a direct connection or a session-pooling proxy. Every
	// PostgreSQL feature works (LISTEN, session advisory locks, named
	// prepared statements).
	PoolSession PoolMode = "session"
	// PoolTransaction: PgBouncer (or a compatible pooler) in transaction
	// pooling mode, where consecutive transactions of one client may run
	// on different server connections. Switchboard then uses no session
	// state: statements are not prepared by name (pgx's cache_describe mode,
	// unless the URL asks for another mode that does not name statements),
	// River polls instead of LISTENing, and migrations take goose's
	// table-based lock instead of a session advisory lock.
	PoolTransaction PoolMode = "transaction"
)

// ParsePoolMode reads DATABASE_POOL_MODE; empty is PoolSession.
func ParsePoolMode(s string) (PoolMode, error) {
	m, err := parsePoolMode(s)
	if err != nil {
		return "", fmt.Errorf("DATABASE_POOL_MODE %w", err)
	}
	return m, nil
}

func parsePoolMode(s string) (PoolMode, error) {
	switch PoolMode(s) {
	case "", PoolSession:
		return PoolSession, nil
	case PoolTransaction:
		return PoolTransaction, nil
	}
	return "", fmt.Errorf("must be %q or %q, not %q", PoolSession, PoolTransaction, s)
}

// EnvDecode implements envconfig.Decoder: a bad DATABASE_POOL_MODE is
// reported by name with the other configuration errors when a command
// reads its environment, before anything connects.
func (m *PoolMode) EnvDecode(val string) error {
	p, err := parsePoolMode(val)
	if err != nil {
		return err
	}
	*m = p
	return nil
}

// parse parses cfg.URL and adapts it to the pool mode.
func (cfg Config) parse() (*pgxpool.Config, error) {
	if cfg.URL == "" {
		return nil, errors.New("DATABASE_URL is not set")
	}
	if _, err := ParsePoolMode(string(cfg.PoolMode)); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("error parsing DATABASE_URL: %w", err)
	}
	if cfg.PoolMode == PoolTransaction && pc.ConnConfig.DefaultQueryExecMode == pgx.QueryExecModeCacheStatement {
		// Named prepared statements live on one server connection; the
		// next transaction may run on another ("prepared statement …
		// does not exist"). cache_describe sends unnamed statements in one
		// round trip once a query's types are known.
		pc.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	}
	return pc, nil
}

// Open connects a pool and pings it. It returns an error when the URL does
// not parse or the database cannot be reached.
func Open(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	pc, err := cfg.parse()
	if err != nil {
		return nil, err
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	if cfg.MinConns > 0 {
		pc.MinConns = cfg.MinConns
	}
	if telemetry.Enabled() {
		pc.ConnConfig.Tracer = telemetry.PgxTracer()
	}
	pc.MaxConnIdleTime = 5 * time.Minute
	pc.HealthCheckPeriod = 15 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("error creating pool: %w", err)
	}
	err = WhileUnavailable(ctx, cfg.WaitForServer, func(ctx context.Context) error {
		pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return pool.Ping(pingCtx)
	})
	if err != nil {
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

// Migrate runs the embedded goose migrations against cfg.URL while holding
// goose's lock, so replicas that start together take turns: a session
// advisory lock, or through a transaction pooler a row in
// LockTableName. It returns the versions applied or rolled back.
func Migrate(ctx context.Context, cfg Config, dir Direction, logger *slog.Logger) ([]int64, error) {
	provider, db, err := newProvider(cfg, logger)
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
func Status(ctx context.Context, cfg Config) ([]MigrationStatus, error) {
	provider, db, err := newProvider(cfg, nil)
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

// LockTableName is the table goose's lock lives in when migrations run
// through a transaction pooler (a session advisory lock would stay with
// whichever server connection took it).
const LockTableName = "switchboard_goose_lock"

func newProvider(cfg Config, logger *slog.Logger) (*goose.Provider, *sql.DB, error) {
	cc, err := cfg.parse()
	if err != nil {
		return nil, nil, err
	}
	db := stdlib.OpenDB(*cc.ConnConfig)
	// Strict order, deliberately: goose refuses a pending migration numbered
	// below one the database already has (no WithAllowOutofOrder), so a
	// deploy never applies migrations in an order no test ran. Each new
	// migration is numbered above main's newest when it merges
	// (docs/design.md, "Migrations"; TestMigrationNumbering).
	opts := []goose.ProviderOption{
		goose.WithTableName(migrations.TableName),
		goose.WithDisableGlobalRegistry(true),
	}
	if cfg.PoolMode == PoolTransaction {
		locker, err := lock.NewPostgresTableLocker(lock.WithTableName(LockTableName), lock.WithTableLockTimeout(time.Second, 600))
		if err != nil {
			db.Close()
			return nil, nil, fmt.Errorf("error creating migration lock: %w", err)
		}
		opts = append(opts, goose.WithLocker(locker))
	} else {
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			db.Close()
			return nil, nil, fmt.Errorf("error creating migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
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

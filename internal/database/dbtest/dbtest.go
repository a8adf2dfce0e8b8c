// Package dbtest gives tests a real, migrated PostgreSQL database.
//
// TEST_DATABASE_URL names a server and a database to connect to for admin
// work (make test points it at the private cluster under .data/ unless it is
// set). The first caller in a run builds a template database from the
// embedded migrations, named after their content hash; every test that needs
// committed data or a River client gets its own database cloned from it and
// dropped at cleanup. Tests that only need a transaction share one database
// per test binary and roll back.
package dbtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	neturl "net/url"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-health/switchboard/internal/database"
	"github.com/switchboard-health/switchboard/migrations"
)

// AdminURL returns TEST_DATABASE_URL and fails the test when it is unset:
// a test that needs PostgreSQL never passes without one.
func AdminURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("TEST_DATABASE_URL")
	if u == "" {
		tb.Fatal("TEST_DATABASE_URL is not set; run the tests with `make test`")
	}
	return u
}

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// migrationsHash names the template after the migrations it holds.
func migrationsHash() (string, error) {
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := fs.ReadFile(migrations.FS, n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func ensureTemplate(ctx context.Context, adminURL string) (string, error) {
	sum, err := migrationsHash()
	if err != nil {
		return "", err
	}
	name := "sbtmpl_" + sum
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("error connecting to TEST_DATABASE_URL: %w", err)
	}
	defer conn.Close(ctx)
	// Test binaries run in parallel: one builds, the others wait.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(727271)"); err != nil {
		return "", err
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock(727271)") //nolint:errcheck
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1 AND datistemplate)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	building := name + "_build"
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+building+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+building+" TEMPLATE template0"); err != nil {
		return "", err
	}
	url, err := rewriteDatabase(adminURL, building)
	if err != nil {
		return "", err
	}
	if _, err := database.Migrate(ctx, database.Config{URL: url}, database.Up, slog.New(slog.DiscardHandler)); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+building+" RENAME TO "+name); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+name+" IS_TEMPLATE true"); err != nil {
		return "", err
	}
	return name, nil
}

// rewriteDatabase returns url with its database name replaced.
func rewriteDatabase(raw, dbname string) (string, error) {
	u, err := neturl.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("TEST_DATABASE_URL must be a postgres:// URL")
	}
	u.Path = "/" + dbname
	return u.String(), nil
}

// NewDatabase creates a fresh migrated database for this test, dropped at
// cleanup, and returns its URL.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	admin := AdminURL(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	templateOnce.Do(func() { templateName, templateErr = ensureTemplate(ctx, admin) })
	if templateErr != nil {
		tb.Fatalf("error preparing template database: %v", templateErr)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	name := "sbtest_" + hex.EncodeToString(rnd[:])
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		tb.Fatalf("error connecting to TEST_DATABASE_URL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+templateName); err != nil {
		tb.Fatalf("error cloning template database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			tb.Errorf("error connecting to drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("error dropping %s: %v", name, err)
		}
	})
	url, err := rewriteDatabase(admin, name)
	if err != nil {
		tb.Fatal(err)
	}
	return url
}

// NewPool creates a fresh migrated database and a pool on it, both closed or
// dropped at cleanup.
func NewPool(tb testing.TB) (*pgxpool.Pool, string) {
	tb.Helper()
	url := NewDatabase(tb)
	pool, err := database.Open(context.Background(), database.Config{URL: url, MaxConns: 20})
	if err != nil {
		tb.Fatalf("error opening test pool: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool, url
}

// Tx returns a transaction on a fresh database, rolled back at cleanup.
func Tx(tb testing.TB) pgx.Tx {
	tb.Helper()
	pool, _ := NewPool(tb)
	tx, err := pool.Begin(context.Background())
	if err != nil {
		tb.Fatalf("error beginning test transaction: %v", err)
	}
	tb.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

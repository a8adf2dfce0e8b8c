package dbtest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// RowCounter counts the rows of every table in the switchboard schema in
// one statement, built once: fuzz targets compare two counts to show that a
// refused input wrote nothing.
type RowCounter struct {
	pool   *pgxpool.Pool
	tables []string
	sql    string
}

// NewRowCounter lists the switchboard tables of pool's database; it fails
// the test when they cannot be listed.
func NewRowCounter(tb testing.TB, pool *pgxpool.Pool) *RowCounter {
	tb.Helper()
	rows, err := pool.Query(context.Background(), `SELECT table_name FROM information_schema.tables
		WHERE table_schema = 'switchboard' AND table_type = 'BASE TABLE' ORDER BY 1`)
	if err != nil {
		tb.Fatalf("error listing tables: %v", err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatalf("error listing tables: %v", err)
	}
	parts := make([]string, len(tables))
	for i, t := range tables {
		parts[i] = "(SELECT count(*) FROM switchboard." + pgx.Identifier{t}.Sanitize() + ")"
	}
	return &RowCounter{pool: pool, tables: tables, sql: "SELECT ARRAY[" + strings.Join(parts, ", ") + "]::bigint[]"}
}

// Count returns the row count of every table, in the counter's order; it
// fails the test on a database error.
func (c *RowCounter) Count(tb testing.TB) []int64 {
	tb.Helper()
	var n []int64
	if err := c.pool.QueryRow(context.Background(), c.sql).Scan(&n); err != nil {
		tb.Fatalf("error counting rows: %v", err)
	}
	return n
}

// Changed names the tables whose counts differ between two Counts, empty
// when none did.
func (c *RowCounter) Changed(before, after []int64) string {
	var out []string
	for i := range before {
		if before[i] != after[i] {
			out = append(out, fmt.Sprintf("%s %d→%d", c.tables[i], before[i], after[i]))
		}
	}
	return strings.Join(out, ", ")
}

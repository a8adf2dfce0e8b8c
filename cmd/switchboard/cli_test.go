package main

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/alecthomas/kong"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/googlehealth"
	"github.com/switchboard-health/switchboard/internal/telnyx"
	"github.com/switchboard-health/switchboard/internal/twilio"
)

// Issue 14 item 2: the CLI must not mislead an operator in an incident.

func cliDatabase(t *testing.T) (*pgx.Conn, string) {
	t.Helper()
	url := dbtest.NewDatabase(t)
	t.Setenv("DATABASE_URL", url)
	t.Setenv("SWITCHBOARD_ACTOR", "ops@test")
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, url
}

func count(t *testing.T, conn *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, conn.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// A typo pauses nothing and says so: non-zero exit, the known destinations
// named, no destination_health row and no audit entry.
func TestUnknownDestinationIsRefusedAndCreatesNothing(t *testing.T) {
	conn, _ := cliDatabase(t)
	for _, sub := range []string{"pause", "resume"} {
		out, err := runCLI(t, "destination", sub, "nosuch")
		var ue usageError
		require.ErrorAs(t, err, &ue, out)
		require.Contains(t, ue.Error(), "nosuch")
		require.Contains(t, ue.Error(), "twilio")
		require.Contains(t, ue.Error(), "telnyx")
		require.NotContains(t, out, "paused")
		require.NotContains(t, out, "resumed")
	}
	require.Zero(t, count(t, conn, "SELECT count(*) FROM switchboard.destination_health WHERE destination = 'nosuch'"))
	require.Zero(t, count(t, conn, "SELECT count(*) FROM switchboard.audit_log WHERE target_id = 'nosuch'"))

	// Real destinations still pause and resume: the vendors, an EHR endpoint.
	_, err := conn.Exec(context.Background(), `INSERT INTO switchboard.ehr_endpoints (name, base_url, auth_kind) VALUES ('epic', 'https://ehr.example/fhir', 'none')`)
	require.NoError(t, err)
	for _, name := range []string{twilio.Provider, telnyx.Provider, googlehealth.Provider, "ehr:epic"} {
		out, err := runCLI(t, "destination", "pause", name)
		require.NoError(t, err, out)
		require.Contains(t, out, "destination "+name+" paused")
		out, err = runCLI(t, "destination", "resume", name)
		require.NoError(t, err, out)
		require.Contains(t, out, "destination "+name+" resumed")
	}
}

// The README's `dlq purge 19 --yes`: flags after ids, as everywhere else.
func TestDLQFlagsAfterIDs(t *testing.T) {
	conn, _ := cliDatabase(t)
	var id int64
	require.NoError(t, conn.QueryRow(context.Background(), `INSERT INTO switchboard.dead_letters (job_id, kind, queue, args, attempts, max_attempts, class, job_state)
		VALUES (4242, 'sms_send', 'sms', '{}', 1, 10, 'permanent', 'cancelled') RETURNING id`).Scan(&id))
	out, err := runCLI(t, "dlq", "purge", strconv.FormatInt(id, 10), "--yes")
	require.NoError(t, err, out)
	require.Contains(t, out, "purged 1 dead letter(s)")
	out, err = runCLI(t, "dlq", "list", "--state", "purged", "--limit", "5")
	require.NoError(t, err, out)
	require.Contains(t, out, "4242")
	out, err = runCLI(t, "dlq", "show", strconv.FormatInt(id, 10))
	require.NoError(t, err, out)
	require.Contains(t, out, `"state": "purged"`)
}

// Bad values are refused before anything runs, naming what is allowed.
func TestDLQRefusesBadStateLimitKindAndClass(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq", "list", "--state", "bogus"}, `"open","requeued","purged","all"`},
		{[]string{"dlq", "list", "--limit", "-1"}, "--limit"},
		{[]string{"dlq", "list", "--limit=-1"}, "between 1 and 10000"},
		{[]string{"dlq", "list", "--limit", "0"}, "between 1 and 10000"},
		{[]string{"dlq", "retry", "--class", "sideways"}, "unavailable"},
		{[]string{"dlq", "purge", "19"}, "--yes"},
		{[]string{"dlq", "purge", "0", "--yes"}, "positive"},
	} {
		_, err := runCLI(t, tc.args...)
		var ue usageError
		require.ErrorAs(t, err, &ue, tc.args)
		require.Contains(t, ue.Error(), tc.want, tc.args)
	}

	_, _ = cliDatabase(t)
	_, err := runCLI(t, "dlq", "list", "--kind", "sms_sned")
	var ue usageError
	require.ErrorAs(t, err, &ue)
	require.Contains(t, ue.Error(), "sms_send", "the valid kinds are listed")
}

// Flags may come before or after positional arguments, and every command
// and subcommand answers --help.
func TestFlagsAnywhereAndHelpEverywhere(t *testing.T) {
	var c cli
	parser, err := newParser(&c, nil, nil)
	require.NoError(t, err)
	var paths [][]string
	var walk func(prefix []string, n *kongNode)
	walk = func(prefix []string, n *kongNode) {
		for _, child := range n.Children {
			p := append(append([]string{}, prefix...), child.Name)
			paths = append(paths, p)
			walk(p, child)
		}
	}
	walk(nil, parser.Model.Node)
	require.Greater(t, len(paths), 30)
	for _, p := range paths {
		for _, args := range [][]string{append(p, "--help"), append([]string{"--help"}, p...)} {
			out, err := runCLI(t, args...)
			require.ErrorIs(t, err, errHelp, args)
			require.Contains(t, out, "Usage: switchboard "+p[0], args)
		}
	}

	_, err = runCLI(t, "healthcheck", "--timeout", "1s", "ftp://x")
	var ue usageError
	require.ErrorAs(t, err, &ue)
	_, err = runCLI(t, "healthcheck", "ftp://x", "--timeout", "1s")
	require.ErrorAs(t, err, &ue)
	require.Contains(t, ue.Error(), "http(s)", "the flag after the URL was parsed, the URL checked")
}

type kongNode = kong.Node

// Configuration mistakes are reported all at once, each by its variable.
func TestConfigErrorsNameEveryVariableAtOnce(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://127.0.0.1:1/none")
	t.Setenv("PUBLIC_BASE_URL", "")
	os.Unsetenv("PUBLIC_BASE_URL")
	t.Setenv("API_DB_MAX_CONNS", "lots")
	t.Setenv("LOG_LEVEL", "info")
	_, err := runCLI(t, "api")
	var ue usageError
	require.ErrorAs(t, err, &ue)
	require.Contains(t, ue.Error(), "PUBLIC_BASE_URL: is required and not set")
	require.Contains(t, ue.Error(), "API_DB_MAX_CONNS:")
	require.NotContains(t, ue.Error(), "PublicBaseURL")
	require.NotContains(t, ue.Error(), "DBMaxConns")
}

// A bad DATABASE_POOL_MODE is a configuration error reported with the
// others, by name, before anything connects (the port in DATABASE_URL
// answers nothing: a connection attempt would be a different error). It
// used to surface only when the pool opened, after every other variable had
// been accepted, and not as a usage error.
func TestBadPoolModeIsReportedWithTheOtherConfigurationErrors(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://127.0.0.1:1/none")
	t.Setenv("DATABASE_POOL_MODE", "statement")
	t.Setenv("PUBLIC_BASE_URL", "https://switchboard.example")
	t.Setenv("LOG_LEVEL", "info")
	for _, args := range [][]string{{"api"}, {"worker"}, {"migrate", "up"}, {"migrate", "status"}, {"dlq", "list"}} {
		_, err := runCLI(t, args...)
		var ue usageError
		require.ErrorAs(t, err, &ue, args)
		require.Contains(t, ue.Error(), `DATABASE_POOL_MODE: must be "session" or "transaction", not "statement"`, args)
	}

	t.Setenv("API_DB_MAX_CONNS", "lots")
	_, err := runCLI(t, "api")
	var ue usageError
	require.ErrorAs(t, err, &ue)
	require.Contains(t, ue.Error(), "DATABASE_POOL_MODE:")
	require.Contains(t, ue.Error(), "API_DB_MAX_CONNS:", "reported together")
}

// `sms settle` takes exactly one decision, and a message that is not held
// is refused with a non-zero exit, changing nothing (the settling itself is
// tested in internal/sms).
func TestSMSSettleRefusesWhatCannotBeSettled(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sms", "settle", "42"}, "exactly one of --copy"},
		{[]string{"sms", "settle", "42", "--copy", "SM1", "--no-copy"}, "exactly one of --copy"},
		{[]string{"sms", "settle", "0", "--no-copy"}, "0 is not a message id"},
	} {
		_, err := runCLI(t, tc.args...)
		var ue usageError
		require.ErrorAs(t, err, &ue, tc.args)
		require.Contains(t, ue.Error(), tc.want, tc.args)
	}

	conn, _ := cliDatabase(t)
	out, err := runCLI(t, "sms", "settle", "42", "--no-copy")
	require.ErrorContains(t, err, "message 42 does not exist", out)
	require.Zero(t, count(t, conn, "SELECT count(*) FROM switchboard.audit_log"))
}

package database_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	neturl "net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
)

// loginAs creates a LOGIN role that is a member of group, dropped at
// cleanup, and connects to dbURL as it.
func loginAs(t *testing.T, admin *pgx.Conn, dbURL, group string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	var rnd [5]byte
	_, _ = rand.Read(rnd[:])
	name := "sbrole_" + hex.EncodeToString(rnd[:])
	_, err := admin.Exec(ctx, "CREATE ROLE "+name+" LOGIN PASSWORD 'pw' IN ROLE "+group)
	require.NoError(t, err)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), dbtest.AdminURL(t))
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP ROLE IF EXISTS "+name)
			_ = c.Close(context.Background())
		}
	})
	u, err := neturl.Parse(dbURL)
	require.NoError(t, err)
	u.User = neturl.UserPassword(name, "pw")
	conn, err := pgx.Connect(ctx, u.String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	var super bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super))
	require.False(t, super)
	return conn
}

// can runs sql in a transaction rolled back afterwards and reports whether
// it was allowed; any error other than insufficient_privilege fails.
func can(t *testing.T, conn *pgx.Conn, sql string) bool {
	t.Helper()
	ctx := context.Background()
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, sql)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		return false
	}
	require.NoError(t, err, sql)
	return true
}

// TestRoles connects with real login roles and checks what each may read:
// the operator sees states, kinds, counts, ids, errors and dead letters and
// no PHI; the PHI reader sees PHI but no secrets; a table added later is
// closed to the operator until it is listed; SECURITY DEFINER functions
// belong to a non-superuser owner.
func TestRoles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := dbtest.NewDatabase(t)
	admin, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close(context.Background()) })

	operator := loginAs(t, admin, dbURL, "switchboard_operator")
	phi := loginAs(t, admin, dbURL, "switchboard_phi_reader")
	app := loginAs(t, admin, dbURL, "switchboard_app")

	var id int64
	require.NoError(t, app.QueryRow(ctx, "SELECT switchboard.send_sms('roles-1', '+15005550009', 'PHI body')").Scan(&id))

	operatorMay := []string{
		"SELECT count(*) FROM switchboard.messages",
		"SELECT id, status, provider, provider_message_id, error_code, error_reason, job_id, created_at FROM switchboard.messages",
		"SELECT id, kind, state, attempt, errors, args, queue FROM switchboard.river_job",
		"SELECT * FROM switchboard.dead_letters",
		"SELECT * FROM switchboard.message_attempts",
		"SELECT * FROM switchboard.message_events",
		"SELECT id, provider, event_type, state, received_at FROM switchboard.inbound_webhooks",
		"SELECT id, provider, keyword, message_id FROM switchboard.inbound_messages",
		"SELECT id, patient_id, kind, status FROM switchboard.observations",
		"SELECT id FROM switchboard.patients",
		"SELECT id, kind, subject, occurred_at FROM switchboard.events",
		"SELECT id, patient_id, provider, status, last_error_class FROM switchboard.device_connections",
		"SELECT id, name, base_url, enabled FROM switchboard.ehr_endpoints",
		"SELECT id, state, reason, resource_type FROM switchboard.fhir_inbound",
		"SELECT * FROM switchboard.destination_health",
		"SELECT * FROM switchboard.job_kinds",
		"SELECT * FROM switchboard.deployment",
		"SELECT id, name, write_plan, retired_at FROM switchboard.ehr_endpoints",
		"SELECT id, status, kind, rejection_reason FROM switchboard.wearable_samples",
		"SELECT opted_out, source FROM switchboard.sms_consent",
		"SELECT patient_id, provider, expires_at, used_at FROM switchboard.connect_links",
		"SELECT id, connection_id, expires_at, revoked_at, last_used_at FROM switchboard.upload_tokens",
		"SELECT switchboard.dlq_retry_where('no_such_kind', NULL, NULL, 'ops@test')",
	}
	phiColumns := []string{
		"SELECT body FROM switchboard.messages",
		"SELECT to_e164 FROM switchboard.messages",
		"SELECT patient_ref FROM switchboard.messages",
		"SELECT given_name FROM switchboard.patients",
		"SELECT family_name FROM switchboard.patients",
		"SELECT birth_date FROM switchboard.patients",
		"SELECT phone_e164 FROM switchboard.patients",
		"SELECT external_ref FROM switchboard.patients",
		"SELECT value FROM switchboard.observations",
		"SELECT effective_start FROM switchboard.observations",
		"SELECT body FROM switchboard.inbound_messages",
		"SELECT from_e164 FROM switchboard.inbound_messages",
		"SELECT raw_body FROM switchboard.inbound_webhooks",
		"SELECT raw FROM switchboard.fhir_inbound",
		"SELECT resource FROM switchboard.fhir_outbound",
		"SELECT value FROM switchboard.wearable_samples",
		"SELECT external_user_id FROM switchboard.device_connections",
		"SELECT external_id, display_name FROM switchboard.devices",
		"SELECT phone_e164 FROM switchboard.sms_consent",
		"SELECT phone_e164 FROM switchboard.sms_auto_replies",
		"SELECT data FROM switchboard.events",
		"SELECT * FROM switchboard.messages",
		"SELECT * FROM switchboard.patients",
	}
	secrets := []string{
		"SELECT access_token_sealed FROM switchboard.device_connections",
		"SELECT refresh_token_sealed FROM switchboard.device_connections",
		"SELECT bearer_token_sealed FROM switchboard.ehr_endpoints",
		"SELECT webhook_secret_hash FROM switchboard.ehr_endpoints",
		"SELECT private_key_sealed FROM switchboard.ehr_signing_keys",
		"SELECT code_verifier_sealed FROM switchboard.oauth_states",
		"SELECT token_hash FROM switchboard.connect_links",
		"SELECT token_hash FROM switchboard.upload_tokens",
	}
	writes := []string{
		"UPDATE switchboard.messages SET status = 'cancelled'",
		"DELETE FROM switchboard.dead_letters",
		"INSERT INTO switchboard.column_access VALUES ('messages', 'body', 'operator')",
		"SELECT switchboard.apply_role_grants()",
		"SELECT switchboard.secure_definer_functions()",
	}

	t.Run("OperatorSeesWhatOperatingNeeds", func(t *testing.T) {
		for _, sql := range operatorMay {
			require.True(t, can(t, operator, sql), sql)
		}
	})
	t.Run("OperatorSeesNoPHI", func(t *testing.T) {
		for _, sql := range append(append(phiColumns, secrets...), writes...) {
			require.False(t, can(t, operator, sql), sql)
		}
	})
	t.Run("PHIReaderSeesPHIButNoSecrets", func(t *testing.T) {
		for _, sql := range append(operatorMay[:len(operatorMay)-1], phiColumns...) {
			require.True(t, can(t, phi, sql), sql)
		}
		var body string
		require.NoError(t, phi.QueryRow(ctx, "SELECT body FROM switchboard.messages WHERE id = $1", id).Scan(&body))
		require.Equal(t, "PHI body", body)
		for _, sql := range append(append(secrets, writes...), "SELECT switchboard.dlq_retry_where('no_such_kind', NULL, NULL, 'x')") {
			require.False(t, can(t, phi, sql), sql)
		}
	})

	t.Run("ATableAddedLaterIsClosedToOperatorsUntilListed", func(t *testing.T) {
		// What a later migration does: a table, a careless blanket grant,
		// then the two calls every migration from 00090 on ends with.
		_, err := admin.Exec(ctx, `CREATE TABLE switchboard.later_table (id bigint, note text, api_token_sealed bytea);
			GRANT SELECT ON switchboard.later_table TO switchboard_operator;
			SELECT switchboard.apply_role_grants(); SELECT switchboard.secure_definer_functions();`)
		require.NoError(t, err)
		require.False(t, can(t, operator, "SELECT id FROM switchboard.later_table"), "default deny")
		require.False(t, can(t, operator, "SELECT count(*) FROM switchboard.later_table"))
		require.True(t, can(t, phi, "SELECT id, note FROM switchboard.later_table"))
		require.False(t, can(t, phi, "SELECT api_token_sealed FROM switchboard.later_table"), "secret by name")

		_, err = admin.Exec(ctx, `INSERT INTO switchboard.column_access VALUES ('later_table', 'id', 'operator');
			SELECT switchboard.apply_role_grants();`)
		require.NoError(t, err)
		require.True(t, can(t, operator, "SELECT id FROM switchboard.later_table"))
		require.False(t, can(t, operator, "SELECT note FROM switchboard.later_table"))
	})

	t.Run("DefinerFunctionsBelongToANonSuperuser", func(t *testing.T) {
		var super, login bool
		require.NoError(t, admin.QueryRow(ctx, "SELECT rolsuper, rolcanlogin FROM pg_roles WHERE rolname = 'switchboard_definer'").Scan(&super, &login))
		require.False(t, super)
		require.False(t, login)
		rows, err := admin.Query(ctx, `SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
			WHERE n.nspname = 'switchboard' AND p.prosecdef AND p.proowner <> 'switchboard_definer'::regrole`)
		require.NoError(t, err)
		others, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.Empty(t, others, "SECURITY DEFINER functions owned by another role")
		var n int
		require.NoError(t, admin.QueryRow(ctx, `SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
			WHERE n.nspname = 'switchboard' AND p.prosecdef`).Scan(&n))
		require.Greater(t, n, 10)

		// The app's API still works through the new owner.
		var ok bool
		require.NoError(t, app.QueryRow(ctx, "SELECT switchboard.cancel_sms($1)", id).Scan(&ok))
		require.True(t, ok)
		var patientID int64
		require.NoError(t, app.QueryRow(ctx, "SELECT switchboard.upsert_patient('mrn-1', 'Ann', 'Lee', 'female', '1980-01-02', '+15005550009')").Scan(&patientID))
		worker := loginAs(t, admin, dbURL, "switchboard_worker")
		require.True(t, can(t, worker, "SELECT switchboard.rate_limit_take('roles:test', '1 second', 1)"))
	})
}

// TestEveryColumnIsClassified: each column is either listed in
// switchboard.column_access (operator or secret) or is one of the PHI
// columns below, which only switchboard_phi_reader reads. A migration that
// adds a column operators need, and forgets its column_access row, fails
// here rather than leaving operators blind to it.
func TestEveryColumnIsClassified(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := dbtest.NewPool(t)
	rows, err := pool.Query(ctx, `SELECT c.table_name || '.' || c.column_name
		FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
		WHERE c.table_schema = 'switchboard'
		  AND NOT EXISTS (SELECT FROM switchboard.column_access a
		                  WHERE a.table_name = c.table_name AND a.column_name IN (c.column_name, '*'))
		ORDER BY 1`)
	require.NoError(t, err)
	unlisted, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	phiOnly := []string{
		"audit_log.detail",
		"device_connections.cursors", "device_connections.external_user_id", "device_connections.legacy_user_id", "device_connections.time_zone",
		"devices.display_name", "devices.external_id",
		"events.data",
		"fhir_inbound.raw", "fhir_outbound.resource",
		"inbound_messages.body", "inbound_messages.from_e164", "inbound_messages.to_e164",
		"inbound_webhooks.raw_body",
		"messages.body", "messages.content_hash", "messages.patient_ref", "messages.time_zone", "messages.to_e164",
		"oauth_states.redirect_uri",
		"observations.effective_end", "observations.effective_start", "observations.interpretation", "observations.source_id",
		"observations.summary_count", "observations.summary_max", "observations.summary_min", "observations.summary_period",
		"observations.unit", "observations.utc_offset_seconds", "observations.value",
		"patients.birth_date", "patients.external_ref", "patients.family_name", "patients.gender", "patients.given_name", "patients.phone_e164",
		"sms_auto_replies.last_reply_at", "sms_auto_replies.phone_e164",
		"sms_consent.phone_e164",
		"wearable_samples.effective_end", "wearable_samples.effective_start", "wearable_samples.interpretation", "wearable_samples.source_id",
		"wearable_samples.source_unit", "wearable_samples.source_value", "wearable_samples.unit", "wearable_samples.utc_offset_seconds",
		"wearable_samples.value",
	}
	require.Equal(t, phiOnly, unlisted, "list the column in column_access (operator or secret) in a migration, or here when it is PHI")
}

package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/fhir/fhirsandbox"
)

func TestEHRCommands(t *testing.T) {
	for _, args := range [][]string{{"ehr", "--help"}, {"ehr", "add", "--help"}, {"ehr", "add", "x", "--help"}} {
		out, err := runCLI(t, args...)
		require.ErrorIs(t, err, errHelp, args)
		require.Contains(t, out, "Usage: switchboard ehr", args)
	}

	url := dbtest.NewDatabase(t)
	t.Setenv("DATABASE_URL", url)
	t.Setenv("SWITCHBOARD_ACTOR", "ops@test")
	t.Setenv("TOKEN_ENCRYPTION_KEYS", "k1:"+base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	t.Setenv("EHR_WEBHOOK_SECRET", "hook-secret")

	for _, args := range [][]string{{"ehr"}, {"ehr", "sideways"}, {"ehr", "show"}, {"ehr", "add", "x"},
		{"ehr", "add", "x", "--base-url", "http://h/fhir", "--auth", "magic"}, {"ehr", "show", "nobody"},
		{"ehr", "add", "y", "--base-url", "http://h/fhir", "--rate-limit", "lots"}} {
		_, err := runCLI(t, args...)
		var ue usageError
		require.ErrorAs(t, err, &ue, args)
		require.NotContains(t, ue.Error(), "\n", "one clear line")
	}

	srv, err := fhirsandbox.Start(context.Background())
	require.NoError(t, err, "the FHIR peer must start")
	t.Cleanup(srv.Stop)

	out, err := runCLI(t, "ehr", "add", "medplum", "--base-url", srv.BaseURL, "--push", "Patient,Observation,Device", "--pull", "Observation",
		"--rate-limit", "10/s burst 5")
	require.NoError(t, err, out)
	require.Contains(t, out, "added ehr endpoint medplum")
	out, err = runCLI(t, "ehr", "add", "epic", "--base-url", "https://fhir.epic.example/api/FHIR/R4", "--auth", "smart",
		"--client-id", "abc", "--token-url", "https://fhir.epic.example/oauth2/token", "--alg", "RS384")
	require.NoError(t, err, out)
	require.Contains(t, out, "ehr jwks")

	out, err = runCLI(t, "ehr", "test", "medplum")
	require.NoError(t, err, out)
	require.Contains(t, out, "FHIR 4.0.1")

	out, err = runCLI(t, "ehr", "show", "medplum")
	require.NoError(t, err)
	var shown map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &shown))
	require.Equal(t, true, shown["webhook_secret_set"])
	require.NotContains(t, out, "hook-secret")
	caps := shown["capabilities"].(map[string]any)
	require.Contains(t, caps["interactions"], "transaction")

	out, err = runCLI(t, "ehr", "jwks")
	require.NoError(t, err)
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &set))
	require.Len(t, set.Keys, 1)
	require.Equal(t, "RS384", set.Keys[0]["alg"])
	require.Nil(t, set.Keys[0]["d"], "public only")

	out, err = runCLI(t, "ehr", "disable", "epic")
	require.NoError(t, err)
	out, err = runCLI(t, "ehr", "list")
	require.NoError(t, err)
	require.Regexp(t, `(?m)^epic\s.*false`, out)
	require.Regexp(t, `(?m)^medplum\s.*true`, out)

	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), "SELECT action || ' ' || target_id FROM switchboard.audit_log WHERE actor = 'ops@test' ORDER BY id")
	require.NoError(t, err)
	actions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, "ehr.add medplum,ehr.add epic,ehr.test medplum,ehr.jwks *,ehr.disable epic", strings.Join(actions, ","))
	var sealed string
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT private_key_sealed FROM switchboard.ehr_signing_keys").Scan(&sealed))
	require.True(t, strings.HasPrefix(sealed, "v1:k1:"), "private key sealed at rest")
}

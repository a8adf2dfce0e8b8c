package secrets_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/database/dbtest"
	"github.com/switchboard-health/switchboard/internal/fhir"
	"github.com/switchboard-health/switchboard/internal/secrets"
)

func TestRotateReseals(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	ctx := context.Background()
	old, err := secrets.Parse("old:" + key('a'))
	require.NoError(t, err)

	seal := func(v, aad string) string {
		s, err := old.Seal([]byte(v), []byte(aad))
		require.NoError(t, err)
		return s
	}
	var patient int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT switchboard.upsert_patient('p1')").Scan(&patient))
	var conn int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO switchboard.device_connections (patient_id, provider, status)
		VALUES ($1, 'google_health', 'active') RETURNING id`, patient).Scan(&conn))
	connID := itoa(conn)
	_, err = pool.Exec(ctx, "UPDATE switchboard.device_connections SET access_token_sealed = $2, refresh_token_sealed = $3 WHERE id = $1",
		conn, seal("access", "device_connections:"+connID+":access_token"), seal("refresh", "device_connections:"+connID+":refresh_token"))
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "INSERT INTO switchboard.ehr_signing_keys (kid, alg, private_key_sealed, public_jwk) VALUES ('kid-one-1', 'ES384', $1, '{}')",
		seal("der", string(fhir.SigningKeyAAD("kid-one-1"))))
	require.NoError(t, err)

	both, err := secrets.Parse("new:" + key('b') + ",old:" + key('a'))
	require.NoError(t, err)
	r, err := secrets.Rotate(ctx, pool, both)
	require.NoError(t, err)
	require.Equal(t, secrets.RotationReport{Resealed: 2}, r)

	onlyNew, err := secrets.Parse("new:" + key('b'))
	require.NoError(t, err)
	var access, refresh, der string
	require.NoError(t, pool.QueryRow(ctx, "SELECT access_token_sealed, refresh_token_sealed FROM switchboard.device_connections WHERE id = $1", conn).Scan(&access, &refresh))
	require.NoError(t, pool.QueryRow(ctx, "SELECT private_key_sealed FROM switchboard.ehr_signing_keys WHERE kid = 'kid-one-1'").Scan(&der))
	for v, aad := range map[string]string{access: "device_connections:" + connID + ":access_token", refresh: "device_connections:" + connID + ":refresh_token", der: string(fhir.SigningKeyAAD("kid-one-1"))} {
		_, err := onlyNew.Open(v, []byte(aad))
		require.NoError(t, err, "opens with the new key alone")
	}

	r, err = secrets.Rotate(ctx, pool, both)
	require.NoError(t, err)
	require.Equal(t, secrets.RotationReport{Current: 2}, r)
}

func itoa(n int64) string { return fmt.Sprint(n) }

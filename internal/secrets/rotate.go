package secrets

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-health/switchboard/db"
)

// RotationReport counts what Rotate re-sealed and what it left.
type RotationReport struct {
	Resealed int // values now sealed with the primary key
	Current  int // values already sealed with it
	Changed  int // values that changed while being re-sealed (left for the next run)
}

// Rotate re-seals every stored secret (wearable connections' tokens, EHR
// bearer tokens and signing keys) that was sealed with a key other than the
// primary one. Each row is replaced only if it is still what was read, so a
// concurrent token refresh wins. Run it after putting a new key first in
// TOKEN_ENCRYPTION_KEYS, then remove the old key once Resealed reaches zero.
// It returns an error naming the row whose value cannot be opened.
func Rotate(ctx context.Context, pool *pgxpool.Pool, k *Keyring) (RotationReport, error) {
	var r RotationReport
	q := db.New()
	reseal := func(v *string, aad []byte) (*string, bool, error) {
		if v == nil || !k.NeedsRotation(*v) {
			return v, false, nil
		}
		out, err := k.Reseal(*v, aad)
		if err != nil {
			return nil, false, err
		}
		return &out, true, nil
	}
	count := func(changed bool, rows int64) {
		switch {
		case !changed:
			r.Current++
		case rows == 1:
			r.Resealed++
		default:
			r.Changed++
		}
	}

	conns, err := q.SealedDeviceTokensList(ctx, pool)
	if err != nil {
		return r, fmt.Errorf("error listing device connection tokens: %w", err)
	}
	for _, c := range conns {
		id := strconv.FormatInt(c.ID, 10)
		access, a, err := reseal(c.AccessTokenSealed, []byte("device_connections:"+id+":access_token"))
		if err != nil {
			return r, fmt.Errorf("device connection %s access token: %w", id, err)
		}
		refresh, b, err := reseal(c.RefreshTokenSealed, []byte("device_connections:"+id+":refresh_token"))
		if err != nil {
			return r, fmt.Errorf("device connection %s refresh token: %w", id, err)
		}
		if !a && !b {
			count(false, 0)
			continue
		}
		n, err := q.SealedDeviceTokensUpdate(ctx, pool, db.SealedDeviceTokensUpdateParams{
			ID: c.ID, NewAccess: access, NewRefresh: refresh, OldAccess: c.AccessTokenSealed, OldRefresh: c.RefreshTokenSealed,
		})
		if err != nil {
			return r, fmt.Errorf("error storing device connection %s tokens: %w", id, err)
		}
		count(true, n)
	}

	bearers, err := q.SealedBearerTokensList(ctx, pool)
	if err != nil {
		return r, fmt.Errorf("error listing EHR bearer tokens: %w", err)
	}
	for _, e := range bearers {
		v, changed, err := reseal(e.BearerTokenSealed, []byte("ehr_endpoints:"+e.Name+":bearer_token"))
		if err != nil {
			return r, fmt.Errorf("EHR endpoint %s bearer token: %w", e.Name, err)
		}
		var n int64
		if changed {
			if n, err = q.SealedBearerTokenUpdate(ctx, pool, db.SealedBearerTokenUpdateParams{Name: e.Name, NewSealed: v, OldSealed: e.BearerTokenSealed}); err != nil {
				return r, fmt.Errorf("error storing EHR endpoint %s bearer token: %w", e.Name, err)
			}
		}
		count(changed, n)
	}

	keys, err := q.SealedSigningKeysList(ctx, pool)
	if err != nil {
		return r, fmt.Errorf("error listing EHR signing keys: %w", err)
	}
	for _, sk := range keys {
		v, changed, err := reseal(&sk.PrivateKeySealed, []byte("ehr_signing_keys:"+sk.Kid+":private_key"))
		if err != nil {
			return r, fmt.Errorf("EHR signing key %s: %w", sk.Kid, err)
		}
		var n int64
		if changed {
			if n, err = q.SealedSigningKeyUpdate(ctx, pool, db.SealedSigningKeyUpdateParams{Kid: sk.Kid, NewSealed: *v, OldSealed: sk.PrivateKeySealed}); err != nil {
				return r, fmt.Errorf("error storing EHR signing key %s: %w", sk.Kid, err)
			}
		}
		count(changed, n)
	}
	return r, nil
}

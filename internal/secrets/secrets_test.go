package secrets_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/secrets"
)

func key(b byte) string {
	return base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(b), 32)))
}

func TestSealOpenRotate(t *testing.T) {
	t.Parallel()
	old, err := secrets.Parse("k1:" + key('a'))
	require.NoError(t, err)
	aad := []byte("device_connections:1:access_token")
	ct, err := old.Seal([]byte("ya29.token"), aad)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(ct, "v1:k1:"))
	require.NotContains(t, ct, "ya29")

	plain, err := old.Open(ct, aad)
	require.NoError(t, err)
	require.Equal(t, "ya29.token", string(plain))

	_, err = old.Open(ct, []byte("device_connections:2:access_token"))
	require.Error(t, err, "bound to its record")
	tampered := ct[:len(ct)-2] + "AA"
	_, err = old.Open(tampered, aad)
	require.Error(t, err)

	both, err := secrets.Parse("k2:" + key('b') + ",k1:" + key('a'))
	require.NoError(t, err)
	require.Equal(t, "k2", both.PrimaryKeyID())
	require.True(t, both.NeedsRotation(ct))
	re, err := both.Reseal(ct, aad)
	require.NoError(t, err)
	require.False(t, both.NeedsRotation(re))

	onlyNew, err := secrets.Parse("k2:" + key('b'))
	require.NoError(t, err)
	_, err = onlyNew.Open(ct, aad)
	require.ErrorIs(t, err, secrets.ErrUnknownKey)
	plain, err = onlyNew.Open(re, aad)
	require.NoError(t, err)
	require.Equal(t, "ya29.token", string(plain))
}

func TestParseRejectsBadKeys(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "nokid", "k1:notbase64!", "k1:" + base64.StdEncoding.EncodeToString([]byte("short")),
		"bad kid:" + key('a'), "k1:" + key('a') + ",k1:" + key('b')} {
		_, err := secrets.Parse(s)
		require.Error(t, err, s)
		require.NotContains(t, err.Error(), key('a'), "never echoes key material")
	}
}

package api_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/api"
)

const telnyxEvent = `{"data":{"event_type":"message.finalized","id":"0ccc7b54-4df3-4bca-a65a-3da1ecc777f0","occurred_at":"2026-11-26T14:00:00.000+00:00","payload":{"id":"40385f64-5717-4562-b3fc-2c963f66afa6","direction":"outbound","to":[{"phone_number":"+14155550123","status":"delivered"}],"errors":[]},"record_type":"event"},"meta":{"attempt":1,"delivered_to":"https://switchboard.example.com/webhooks/telnyx"}}`

// signTelnyx signs as Telnyx documents it, with the standard library only:
// Ed25519 over "timestamp|body", base64.
func signTelnyx(key ed25519.PrivateKey, ts int64, body string) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, []byte(strconv.FormatInt(ts, 10)+"|"+body)))
}

func TestTelnyxWebhook(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	_, otherPriv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)

	send := func(b *testBundle, target, body, sig string, ts int64) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if sig != "" {
			req.Header.Set("telnyx-signature-ed25519", sig)
			req.Header.Set("telnyx-timestamp", strconv.FormatInt(ts, 10))
		}
		rec := httptest.NewRecorder()
		b.handler.ServeHTTP(rec, req)
		return rec
	}
	now := time.Now().Unix()

	t.Run("ValidIsStoredOnceWithItsJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(c *api.Config) { c.TelnyxPublicKey = pub })
		for range 2 { // a redelivery is a no-op
			rec := send(b, "/webhooks/telnyx/status?m=42", telnyxEvent, signTelnyx(priv, now, telnyxEvent), now)
			require.Equal(t, http.StatusOK, rec.Code)
		}
		require.Equal(t, counts{1, 1}, countRows(t, b.pool))
		var id, typ string
		require.NoError(t, b.pool.QueryRow(t.Context(), "SELECT provider_event_id, event_type FROM switchboard.inbound_webhooks").Scan(&id, &typ))
		require.Equal(t, "0ccc7b54-4df3-4bca-a65a-3da1ecc777f0", id)
		require.Equal(t, "message.finalized", typ)
	})

	for name, tc := range map[string]struct {
		body string
		sig  string
		ts   int64
		want int
	}{
		"TamperedBody":    {strings.Replace(telnyxEvent, "delivered\"}", "failed\"}", 1), signTelnyx(priv, now, telnyxEvent), now, http.StatusForbidden},
		"WrongKey":        {telnyxEvent, signTelnyx(otherPriv, now, telnyxEvent), now, http.StatusForbidden},
		"StaleTimestamp":  {telnyxEvent, signTelnyx(priv, now-600, telnyxEvent), now - 600, http.StatusForbidden},
		"FutureTimestamp": {telnyxEvent, signTelnyx(priv, now+600, telnyxEvent), now + 600, http.StatusForbidden},
		"NoSignature":     {telnyxEvent, "", now, http.StatusForbidden},
		"SignedGarbage":   {`{"data":`, signTelnyx(priv, now, `{"data":`), now, http.StatusBadRequest},
	} {
		t.Run(name+"StoresNothing", func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(c *api.Config) { c.TelnyxPublicKey = pub })
			rec := send(b, "/webhooks/telnyx", tc.body, tc.sig, tc.ts)
			require.Equal(t, tc.want, rec.Code)
			require.Equal(t, counts{0, 0}, countRows(t, b.pool))
		})
	}

	t.Run("UnconfiguredAnswers503", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		rec := send(b, "/webhooks/telnyx", telnyxEvent, signTelnyx(priv, now, telnyxEvent), now)
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		require.Equal(t, counts{0, 0}, countRows(t, b.pool))
	})
}

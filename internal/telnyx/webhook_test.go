package telnyx

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A vector signed by OpenSSL 3.0 (`openssl pkeyutl -sign -rawin` over
// timestamp|body with a fresh Ed25519 key), not by the Go code under test:
// a signer we did not write agrees with our verification.
const (
	opensslPublicKey = "AeOZ9nc212hUsHEWsov+UfWPAknhjxqi9AYLUStgW64="
	opensslTimestamp = "1767225600" // 2026-01-01T00:00:00Z
	opensslBody      = `{"data":{"event_type":"message.finalized","id":"0ccc7b54-4df3-4bca-a65a-3da1ecc777f0","occurred_at":"2026-01-01T00:00:00.000+00:00","payload":{"id":"40385f64-5717-4562-b3fc-2c963f66afa6","to":[{"phone_number":"+15558675309","status":"delivered"}]},"record_type":"event"},"meta":{"attempt":1}}`
	opensslSignature = "3kG7UeA/fS/9XAuRJ/qhww3b9AWmdRdUuWb0fQBpUA7+4C5G5RX8Y+uQQJgnFohWhfZjIsgk+qtskSma8chnDw=="
)

func TestVerifyOpenSSLVector(t *testing.T) {
	t.Parallel()

	key, err := ParsePublicKey(opensslPublicKey)
	require.NoError(t, err)
	signedAt := time.Unix(1767225600, 0)

	require.NoError(t, Verify(key, []byte(opensslBody), opensslSignature, opensslTimestamp, signedAt.Add(time.Minute)))

	c, err := New(Config{
		APIKey: testAPIKey, FromNumber: testFrom, PublicKey: opensslPublicKey,
		APIBaseURL: DefaultAPIBaseURL, RequestTimeout: time.Second,
	}, nil)
	require.NoError(t, err)
	require.NoError(t, c.VerifyWebhook([]byte(opensslBody), opensslSignature, opensslTimestamp, signedAt))

	// The same event, re-serialised with other spacing, does not verify.
	spaced := bytes.Replace([]byte(opensslBody), []byte(`":"`), []byte(`": "`), 1)
	require.ErrorIs(t, c.VerifyWebhook(spaced, opensslSignature, opensslTimestamp, signedAt), ErrBadSignature)
}

func TestVerify(t *testing.T) {
	t.Parallel()

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	otherPub, otherPriv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)

	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"data":{"event_type":"message.sent","id":"e1","payload":{"id":"m1"}}}`)
	ts := func(at time.Time) string { return strconv.FormatInt(at.Unix(), 10) }
	sign := func(key ed25519.PrivateKey, timestamp string, body []byte) string {
		return base64.StdEncoding.EncodeToString(ed25519.Sign(key, SignedPayload(timestamp, body)))
	}
	valid := sign(priv, ts(now), body)

	tests := []struct {
		name      string
		key       ed25519.PublicKey
		body      []byte
		signature string
		timestamp string
		want      error
	}{
		{name: "Valid", key: pub, body: body, signature: valid, timestamp: ts(now)},
		{name: "ValidWithSpaces", key: pub, body: body, signature: " " + valid + " ", timestamp: " " + ts(now)},
		{name: "ValidEmptyBody", key: pub, body: nil, signature: sign(priv, ts(now), nil), timestamp: ts(now)},
		{name: "FiveMinutesOldIsFine", key: pub, body: body, signature: sign(priv, ts(now.Add(-WebhookTolerance)), body), timestamp: ts(now.Add(-WebhookTolerance))},
		{name: "FiveMinutesAheadIsFine", key: pub, body: body, signature: sign(priv, ts(now.Add(WebhookTolerance)), body), timestamp: ts(now.Add(WebhookTolerance))},
		{name: "TamperedBody", key: pub, body: []byte(`{"data":{"event_type":"message.sent","id":"e2","payload":{"id":"m1"}}}`), signature: valid, timestamp: ts(now), want: ErrBadSignature},
		{name: "TamperedTimestamp", key: pub, body: body, signature: valid, timestamp: ts(now.Add(time.Second)), want: ErrBadSignature},
		{name: "WrongKey", key: otherPub, body: body, signature: valid, timestamp: ts(now), want: ErrBadSignature},
		{name: "SignedByAnotherKey", key: pub, body: body, signature: sign(otherPriv, ts(now), body), timestamp: ts(now), want: ErrBadSignature},
		{name: "SignatureNotBase64", key: pub, body: body, signature: "not base64!", timestamp: ts(now), want: ErrBadSignature},
		{name: "SignatureTooShort", key: pub, body: body, signature: base64.StdEncoding.EncodeToString(make([]byte, 63)), timestamp: ts(now), want: ErrBadSignature},
		{name: "StaleTimestamp", key: pub, body: body, signature: sign(priv, ts(now.Add(-WebhookTolerance-time.Second)), body), timestamp: ts(now.Add(-WebhookTolerance - time.Second)), want: ErrStaleTimestamp},
		{name: "FutureTimestamp", key: pub, body: body, signature: sign(priv, ts(now.Add(WebhookTolerance+time.Second)), body), timestamp: ts(now.Add(WebhookTolerance + time.Second)), want: ErrStaleTimestamp},
		{name: "AbsurdTimestamp", key: pub, body: body, signature: valid, timestamp: "9223372036854775807", want: ErrStaleTimestamp},
		{name: "TimestampNotANumber", key: pub, body: body, signature: valid, timestamp: "2026-03-01T12:00:00Z", want: ErrBadTimestamp},
		{name: "TimestampInMilliseconds", key: pub, body: body, signature: valid, timestamp: strconv.FormatInt(now.UnixMilli(), 10), want: ErrStaleTimestamp},
		{name: "MissingSignature", key: pub, body: body, signature: "", timestamp: ts(now), want: ErrMissingHeaders},
		{name: "MissingTimestamp", key: pub, body: body, signature: valid, timestamp: "", want: ErrMissingHeaders},
		{name: "MissingBoth", key: pub, body: body, want: ErrMissingHeaders},
		{name: "NoKey", key: nil, body: body, signature: valid, timestamp: ts(now), want: ErrNoPublicKey},
		{name: "ShortKey", key: pub[:31], body: body, signature: valid, timestamp: ts(now), want: ErrNoPublicKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Verify(tt.key, tt.body, tt.signature, tt.timestamp, now)
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.want)
			require.NotContains(t, err.Error(), "message.sent")
		})
	}
}

func TestVerifyErrorsAreDistinct(t *testing.T) {
	t.Parallel()

	all := []error{ErrMissingHeaders, ErrBadTimestamp, ErrStaleTimestamp, ErrBadSignature, ErrNoPublicKey}
	for i, a := range all {
		for j, b := range all {
			require.Equal(t, i == j, a == b)
		}
	}
}

package googlehealth_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/keyset"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"
	"github.com/tink-crypto/tink-go/v2/signature"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/switchboard-health/switchboard/internal/googlehealth"
)

// tinkSigner is Google's side of a notification signature, made with Tink
// itself (the library Google signs with), not with our own code: a private
// keyset, its signer, and the public keyset as Tink writes it in JSON.
type tinkSigner struct {
	signer    tink.Signer
	publicKS  []byte
	primaryID uint32
}

func newTinkSigner(t *testing.T, templates ...*tinkpb.KeyTemplate) *tinkSigner {
	t.Helper()
	if len(templates) == 0 {
		templates = []*tinkpb.KeyTemplate{signature.ECDSAP256KeyTemplate()}
	}
	m := keyset.NewManager()
	var primary uint32
	for i, tmpl := range templates {
		id, err := m.Add(tmpl)
		require.NoError(t, err)
		if i == len(templates)-1 {
			require.NoError(t, m.SetPrimary(id))
			primary = id
		}
	}
	h, err := m.Handle()
	require.NoError(t, err)
	signer, err := signature.NewSigner(h)
	require.NoError(t, err)
	pub, err := h.Public()
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, pub.WriteWithNoSecrets(keyset.NewJSONWriter(&buf)))
	return &tinkSigner{signer: signer, publicKS: buf.Bytes(), primaryID: primary}
}

// sign returns the header value Google sends: base64 of Tink's signature
// (0x01 ‖ key id ‖ DER ECDSA for a TINK key).
func (s *tinkSigner) sign(t *testing.T, body []byte) string {
	t.Helper()
	sig, err := s.signer.Sign(body)
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(sig)
}

// writeKeyset writes the public keyset where GOOGLE_HEALTH_WEBHOOK_KEYSET
// points and returns the path.
func writeKeyset(t *testing.T, ks []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keyset.json")
	require.NoError(t, os.WriteFile(path, ks, 0o600))
	return path
}

func newVerifier(t *testing.T, cfg googlehealth.Config) *googlehealth.Verifier {
	t.Helper()
	v, err := googlehealth.NewVerifier(cfg)
	require.NoError(t, err)
	return v
}

const notification = `{"data":{"version":"1","healthUserId":"hu-1","operation":"UPSERT","dataType":"steps",` +
	`"intervals":[{"physicalTimeInterval":{"startTime":"2026-11-25T08:00:00Z","endTime":"2026-11-25T09:00:00Z"}}]}}`

func TestVerifySignature(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		google *tinkSigner
		v      *googlehealth.Verifier
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		google := newTinkSigner(t)
		return &testBundle{google: google, v: newVerifier(t, googlehealth.Config{WebhookKeyset: writeKeyset(t, google.publicKS)})}
	}

	t.Run("TinkSignatureOverTheRawBodyVerifies", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := []byte(notification)
		require.NoError(t, b.v.VerifySignature(body, b.google.sign(t, body)))
	})

	t.Run("EitherHeaderName", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := []byte(notification)
		sig := b.google.sign(t, body)
		for _, name := range []string{googlehealth.SignatureHeader, googlehealth.LegacySignatureHeader, "GOOGLE-HEALTH-API-SIGNATURE", "X-HEALTHAPI-SIGNATURE"} {
			h := http.Header{}
			h.Set(name, sig)
			require.NoError(t, b.v.VerifySignature(body, googlehealth.Signature(h.Get)), name)
		}
	})

	t.Run("URLSafeBase64Verifies", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := []byte(notification)
		raw, err := base64.StdEncoding.DecodeString(b.google.sign(t, body))
		require.NoError(t, err)
		require.NoError(t, b.v.VerifySignature(body, base64.RawURLEncoding.EncodeToString(raw)))
	})

	t.Run("TamperedBodyIsRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := []byte(notification)
		sig := b.google.sign(t, body)
		for _, tampered := range [][]byte{
			[]byte(strings.Replace(notification, "hu-1", "hu-2", 1)),
			[]byte(strings.Replace(notification, "UPSERT", "DELETE", 1)),
			append([]byte(notification), ' '),
			[]byte(notification)[:len(notification)-1],
			nil,
		} {
			require.ErrorIs(t, b.v.VerifySignature(tampered, sig), googlehealth.ErrBadSignature, "%q", tampered)
		}
	})

	t.Run("TamperedSignatureIsRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := []byte(notification)
		raw, err := base64.StdEncoding.DecodeString(b.google.sign(t, body))
		require.NoError(t, err)
		for i := 5; i < len(raw); i += 7 {
			bad := bytes.Clone(raw)
			bad[i] ^= 0x40
			require.ErrorIs(t, b.v.VerifySignature(body, base64.StdEncoding.EncodeToString(bad)), googlehealth.ErrBadSignature, "byte %d", i)
		}
		require.ErrorIs(t, b.v.VerifySignature(body, base64.StdEncoding.EncodeToString(raw[:5])), googlehealth.ErrBadSignature, "prefix only")
	})

	t.Run("SignatureByAnotherKeyIsRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := []byte(notification)
		other := newTinkSigner(t)
		// Its key id is not in the keyset.
		require.ErrorIs(t, b.v.VerifySignature(body, other.sign(t, body)), googlehealth.ErrUnknownKey)
		// Its signature under our key's id.
		raw, err := base64.StdEncoding.DecodeString(other.sign(t, body))
		require.NoError(t, err)
		binary.BigEndian.PutUint32(raw[1:5], b.google.primaryID)
		require.ErrorIs(t, b.v.VerifySignature(body, base64.StdEncoding.EncodeToString(raw)), googlehealth.ErrBadSignature)
	})

	t.Run("MissingOrGarbledHeaderIsRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := []byte(notification)
		require.ErrorIs(t, b.v.VerifySignature(body, googlehealth.Signature(http.Header{}.Get)), googlehealth.ErrNoSignature)
		require.ErrorIs(t, b.v.VerifySignature(body, "not base64 at all!"), googlehealth.ErrBadSignature)
		require.ErrorIs(t, b.v.VerifySignature(body, base64.StdEncoding.EncodeToString([]byte{0x01})), googlehealth.ErrBadSignature)
	})

	t.Run("RotatedKeysetVerifiesOldAndNewKeys", func(t *testing.T) {
		t.Parallel()
		// Google rotates: the keyset holds the old and the new key, the
		// new one primary. Both keys' signatures verify.
		m := keyset.NewManager()
		oldID, err := m.Add(signature.ECDSAP256KeyTemplate())
		require.NoError(t, err)
		require.NoError(t, m.SetPrimary(oldID))
		h, err := m.Handle()
		require.NoError(t, err)
		oldSigner, err := signature.NewSigner(h)
		require.NoError(t, err)
		newID, err := m.Add(signature.ECDSAP256KeyTemplate())
		require.NoError(t, err)
		require.NoError(t, m.SetPrimary(newID))
		h, err = m.Handle()
		require.NoError(t, err)
		newSigner, err := signature.NewSigner(h)
		require.NoError(t, err)
		pub, err := h.Public()
		require.NoError(t, err)
		var buf bytes.Buffer
		require.NoError(t, pub.WriteWithNoSecrets(keyset.NewJSONWriter(&buf)))
		v := newVerifier(t, googlehealth.Config{WebhookKeyset: writeKeyset(t, buf.Bytes())})

		body := []byte(notification)
		for _, s := range []tink.Signer{oldSigner, newSigner} {
			sig, err := s.Sign(body)
			require.NoError(t, err)
			require.NoError(t, v.VerifySignature(body, base64.StdEncoding.EncodeToString(sig)))
		}
	})

	t.Run("RawPrefixKeyVerifies", func(t *testing.T) {
		t.Parallel()
		google := newTinkSigner(t, signature.ECDSAP256KeyWithoutPrefixTemplate())
		v := newVerifier(t, googlehealth.Config{WebhookKeyset: writeKeyset(t, google.publicKS)})
		body := []byte(notification)
		require.NoError(t, v.VerifySignature(body, google.sign(t, body)))
		require.ErrorIs(t, v.VerifySignature([]byte(notification+" "), google.sign(t, body)), googlehealth.ErrBadSignature)
	})

	t.Run("KeysetFileWrittenAfterStartIsRead", func(t *testing.T) {
		t.Parallel()
		google := newTinkSigner(t)
		path := filepath.Join(t.TempDir(), "keyset.json")
		v := newVerifier(t, googlehealth.Config{WebhookKeyset: path})
		body := []byte(notification)
		require.ErrorIs(t, v.VerifySignature(body, google.sign(t, body)), os.ErrNotExist)
		require.NoError(t, os.WriteFile(path, google.publicKS, 0o600))
		require.NoError(t, v.VerifySignature(body, google.sign(t, body)))
	})

	t.Run("NoKeysetConfiguredRefusesEverything", func(t *testing.T) {
		t.Parallel()
		google := newTinkSigner(t)
		v := newVerifier(t, googlehealth.Config{})
		body := []byte(notification)
		require.ErrorIs(t, v.VerifySignature(body, google.sign(t, body)), googlehealth.ErrNoKeyset)
		require.False(t, v.Configured())
	})
}

func TestParseKeyset(t *testing.T) {
	t.Parallel()

	t.Run("TinkPublicKeysetJSON", func(t *testing.T) {
		t.Parallel()
		google := newTinkSigner(t, signature.ECDSAP256KeyTemplate(), signature.ECDSAP256KeyWithoutPrefixTemplate())
		keys, err := googlehealth.ParseKeyset(google.publicKS)
		require.NoError(t, err)
		require.Len(t, keys, 2)
		require.Contains(t, keys, google.primaryID)
	})

	t.Run("OtherAlgorithmsAreRefused", func(t *testing.T) {
		t.Parallel()
		for name, tmpl := range map[string]*tinkpb.KeyTemplate{
			"P-384":      signature.ECDSAP384SHA384KeyTemplate(),
			"IEEE P1363": signature.ECDSAP256RawKeyTemplate(),
			"Ed25519":    signature.ED25519KeyTemplate(),
		} {
			_, err := googlehealth.ParseKeyset(newTinkSigner(t, tmpl).publicKS)
			require.Error(t, err, name)
		}
	})

	t.Run("GarbageIsRefused", func(t *testing.T) {
		t.Parallel()
		for _, ks := range []string{``, `{`, `{"primaryKeyId":1,"key":[]}`, `[]`,
			`{"key":[{"keyData":{"typeUrl":"type.googleapis.com/google.crypto.tink.EcdsaPublicKey","value":"!!"},"keyId":1,"status":"ENABLED"}]}`,
			`{"key":[{"keyData":{"typeUrl":"type.googleapis.com/google.crypto.tink.EcdsaPublicKey","value":"AAAA"},"keyId":1,"status":"ENABLED"}]}`,
		} {
			_, err := googlehealth.ParseKeyset([]byte(ks))
			require.Error(t, err, ks)
		}
	})

	t.Run("DisabledKeysAreSkipped", func(t *testing.T) {
		t.Parallel()
		google := newTinkSigner(t)
		disabled := strings.Replace(string(google.publicKS), `"ENABLED"`, `"DISABLED"`, 1)
		_, err := googlehealth.ParseKeyset([]byte(disabled))
		require.ErrorContains(t, err, "no enabled key")
	})
}

func TestCheckAuthorization(t *testing.T) {
	t.Parallel()

	rotating := googlehealth.Config{WebhookSecret: "Bearer old | Bearer new", WebhookRequireAuthorization: true}

	t.Run("EveryAcceptedSecretDuringRotation", func(t *testing.T) {
		t.Parallel()
		v := newVerifier(t, rotating)
		require.NoError(t, v.CheckAuthorization("Bearer old", false))
		require.NoError(t, v.CheckAuthorization("Bearer new", false))
	})

	t.Run("WrongOrPartialSecretIsRefused", func(t *testing.T) {
		t.Parallel()
		v := newVerifier(t, rotating)
		for _, h := range []string{"Bearer", "Bearer ol", "Bearer old ", "bearer old", "Bearer old | Bearer new", "Bearer other"} {
			require.ErrorIs(t, v.CheckAuthorization(h, false), googlehealth.ErrBadAuthorization, "%q", h)
		}
	})

	t.Run("MissingHeader", func(t *testing.T) {
		t.Parallel()
		strictCfg := rotating
		require.ErrorIs(t, newVerifier(t, strictCfg).CheckAuthorization("", false), googlehealth.ErrNoAuthorization)
		lax := rotating
		lax.WebhookRequireAuthorization = false
		v := newVerifier(t, lax)
		require.NoError(t, v.CheckAuthorization("", false), "allowed when configured so; the signature still has to verify")
		require.ErrorIs(t, v.CheckAuthorization("", true), googlehealth.ErrNoAuthorization, "the handshake always requires it")
		require.ErrorIs(t, v.CheckAuthorization("Bearer wrong", false), googlehealth.ErrBadAuthorization, "a wrong one is never allowed")
	})

	t.Run("NoSecretConfiguredAcceptsNothing", func(t *testing.T) {
		t.Parallel()
		v := newVerifier(t, googlehealth.Config{WebhookSecret: " | ", WebhookRequireAuthorization: true})
		require.ErrorIs(t, v.CheckAuthorization("", false), googlehealth.ErrNoAuthorization)
		require.ErrorIs(t, v.CheckAuthorization(" ", false), googlehealth.ErrBadAuthorization)
	})

	t.Run("ErrorsNameNoSecret", func(t *testing.T) {
		t.Parallel()
		v := newVerifier(t, rotating)
		err := v.CheckAuthorization("Bearer guess", false)
		require.NotContains(t, err.Error(), "old")
		require.NotContains(t, err.Error(), "new")
		require.NotContains(t, err.Error(), "guess")
	})
}

func TestParseNotifications(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		body  string
		users []string
		err   bool
	}{
		"Envelope":         {body: notification, users: []string{"hu-1"}},
		"ArrayOfEnvelopes": {body: `[` + notification + `,{"data":{"healthUserId":"hu-2","operation":"DELETE","dataType":"weight"}}]`, users: []string{"hu-1", "hu-2"}},
		"BareObject":       {body: `{"healthUserId":"hu-3","dataType":"sleep"}`, users: []string{"hu-3"}},
		"NoUser":           {body: `{"data":{"dataType":"steps"}}`, err: true},
		"NoDataType":       {body: `{"data":{"healthUserId":"hu-1"}}`, err: true},
		"UnknownOperation": {body: `{"data":{"healthUserId":"hu-1","dataType":"steps","operation":"DROP"}}`, err: true},
		"EmptyArray":       {body: `[]`, err: true},
		"OneBadInArray":    {body: `[` + notification + `,{"data":{}}]`, err: true},
		"NotJSON":          {body: `data=1`, err: true},
		"Verification":     {body: `{"type":"verification"}`, err: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ns, err := googlehealth.ParseNotifications([]byte(tc.body))
			if tc.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			var users []string
			for _, n := range ns {
				users = append(users, n.HealthUserID)
			}
			require.Equal(t, tc.users, users)
		})
	}

	t.Run("IntervalsAreRead", func(t *testing.T) {
		t.Parallel()
		ns, err := googlehealth.ParseNotifications([]byte(notification))
		require.NoError(t, err)
		require.Len(t, ns[0].Intervals, 1)
		require.Equal(t, "2026-11-25T08:00:00Z", ns[0].Intervals[0].PhysicalTimeInterval.StartTime.Format("2006-01-02T15:04:05Z07:00"))
	})

	t.Run("IsVerification", func(t *testing.T) {
		t.Parallel()
		require.True(t, googlehealth.IsVerification([]byte(`{"type":"verification"}`)))
		require.False(t, googlehealth.IsVerification([]byte(notification)))
		require.False(t, googlehealth.IsVerification([]byte(`{"type":"verification"`)))
	})
}

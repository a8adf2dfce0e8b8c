package googlehealth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// Signature headers: the current name and the one older docs use.
const (
	SignatureHeader       = "Google-Health-Api-Signature"
	LegacySignatureHeader = "X-Healthapi-Signature"
)

// Errors of webhook verification. Their text names no secret.
var (
	ErrNoAuthorization  = errors.New("authorization header missing")
	ErrBadAuthorization = errors.New("authorization header does not match the webhook secret")
	ErrNoSignature      = errors.New("signature header missing")
	ErrBadSignature     = errors.New("signature does not verify")
	ErrUnknownKey       = errors.New("signature key id is not in the keyset")
	ErrNoKeyset         = errors.New("no webhook keyset configured")
)

// Tink identifiers used in keysets.
const (
	tinkEcdsaPublicKeyURL = "type.googleapis.com/google.crypto.tink.EcdsaPublicKey"
	tinkHashSHA256        = 3
	tinkCurveP256         = 2
	tinkEncodingDER       = 2
)

// tinkKeyset is Tink's JSON keyset format (public keys only).
type tinkKeyset struct {
	PrimaryKeyID uint32 `json:"primaryKeyId"`
	Key          []struct {
		KeyData struct {
			TypeURL         string `json:"typeUrl"`
			Value           string `json:"value"`
			KeyMaterialType string `json:"keyMaterialType"`
		} `json:"keyData"`
		Status           string `json:"status"`
		KeyID            uint32 `json:"keyId"`
		OutputPrefixType string `json:"outputPrefixType"`
	} `json:"key"`
}

type VerifyKey struct {
	pub *ecdsa.PublicKey
	raw bool // RAW output prefix: no key id in the signature
}

// ParseKeyset reads a Tink JSON public keyset of ECDSA P-256/SHA-256 DER
// keys. Disabled keys are skipped. It returns an error for anything else.
func ParseKeyset(b []byte) (map[uint32]VerifyKey, error) {
	var ks tinkKeyset
	if err := json.Unmarshal(b, &ks); err != nil {
		return nil, fmt.Errorf("keyset is not Tink JSON: %w", err)
	}
	keys := map[uint32]VerifyKey{}
	for _, k := range ks.Key {
		if k.Status != "" && k.Status != "ENABLED" {
			continue
		}
		if k.KeyData.TypeURL != tinkEcdsaPublicKeyURL {
			return nil, fmt.Errorf("keyset key %d: type %q is not an ECDSA public key", k.KeyID, k.KeyData.TypeURL)
		}
		raw, err := base64.StdEncoding.DecodeString(k.KeyData.Value)
		if err != nil {
			return nil, fmt.Errorf("keyset key %d: value is not base64", k.KeyID)
		}
		pub, err := parseEcdsaPublicKey(raw)
		if err != nil {
			return nil, fmt.Errorf("keyset key %d: %w", k.KeyID, err)
		}
		switch k.OutputPrefixType {
		case "TINK", "":
			keys[k.KeyID] = VerifyKey{pub: pub}
		case "RAW":
			keys[k.KeyID] = VerifyKey{pub: pub, raw: true}
		default:
			return nil, fmt.Errorf("keyset key %d: output prefix %s not supported", k.KeyID, k.OutputPrefixType)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("keyset has no enabled key")
	}
	return keys, nil
}

// parseEcdsaPublicKey decodes Tink's EcdsaPublicKey proto:
// version=1, params=2 {hash_type=1, curve=2, encoding=3}, x=3, y=4.
func parseEcdsaPublicKey(b []byte) (*ecdsa.PublicKey, error) {
	var x, y []byte
	var hash, curve, encoding uint64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, errors.New("malformed EcdsaPublicKey")
		}
		b = b[n:]
		switch {
		case num == 2 && typ == protowire.BytesType:
			params, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, errors.New("malformed EcdsaParams")
			}
			b = b[n:]
			for len(params) > 0 {
				pn, pt, m := protowire.ConsumeTag(params)
				if m < 0 {
					return nil, errors.New("malformed EcdsaParams")
				}
				params = params[m:]
				if pt != protowire.VarintType {
					m = protowire.ConsumeFieldValue(pn, pt, params)
					if m < 0 {
						return nil, errors.New("malformed EcdsaParams")
					}
					params = params[m:]
					continue
				}
				v, m := protowire.ConsumeVarint(params)
				if m < 0 {
					return nil, errors.New("malformed EcdsaParams")
				}
				params = params[m:]
				switch pn {
				case 1:
					hash = v
				case 2:
					curve = v
				case 3:
					encoding = v
				}
			}
		case (num == 3 || num == 4) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, errors.New("malformed EcdsaPublicKey")
			}
			b = b[n:]
			if num == 3 {
				x = v
			} else {
				y = v
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, errors.New("malformed EcdsaPublicKey")
			}
			b = b[n:]
		}
	}
	if hash != tinkHashSHA256 || curve != tinkCurveP256 || encoding != tinkEncodingDER {
		return nil, errors.New("key is not ECDSA P-256 with SHA-256 and DER signatures")
	}
	pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
	if !pub.Curve.IsOnCurve(pub.X, pub.Y) {
		return nil, errors.New("public key is not on P-256")
	}
	return pub, nil
}

// Verifier checks Google Health notifications. It is safe for concurrent use.
type Verifier struct {
	secrets     []string
	requireAuth bool
	path        string

	mu       sync.Mutex
	keys     map[uint32]VerifyKey
	loadedAt time.Time
}

// NewVerifier returns a verifier for cfg's webhook secret(s) and keyset
// file. It returns an error when the keyset file exists but cannot be
// parsed; a missing file is tried again at each notification.
func NewVerifier(cfg Config) (*Verifier, error) {
	v := &Verifier{secrets: cfg.WebhookSecrets(), requireAuth: cfg.WebhookRequireAuthorization, path: cfg.WebhookKeyset}
	if v.path != "" {
		if err := v.reload(); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return v, nil
}

// Configured reports whether a secret and a keyset are set.
func (v *Verifier) Configured() bool { return len(v.secrets) > 0 && v.path != "" }

func (v *Verifier) reload() error {
	b, err := os.ReadFile(v.path)
	if err != nil {
		return fmt.Errorf("error reading GOOGLE_HEALTH_WEBHOOK_KEYSET: %w", err)
	}
	keys, err := ParseKeyset(b)
	if err != nil {
		return fmt.Errorf("GOOGLE_HEALTH_WEBHOOK_KEYSET: %w", err)
	}
	v.keys, v.loadedAt = keys, time.Now()
	return nil
}

// CheckAuthorization compares the Authorization header with every accepted
// secret in constant time. With strictness off, a missing header passes
// (the signature still has to verify).
func (v *Verifier) CheckAuthorization(header string, strict bool) error {
	if header == "" {
		if strict || v.requireAuth {
			return ErrNoAuthorization
		}
		return nil
	}
	ok := 0
	for _, s := range v.secrets {
		ok |= subtle.ConstantTimeCompare([]byte(header), []byte(s))
	}
	if ok != 1 {
		return ErrBadAuthorization
	}
	return nil
}

// VerifySignature checks sig (base64 of 0x01 ‖ key id ‖ DER ECDSA over
// sha256(body)) against the keyset, reloading the keyset file once when the
// key id is unknown (rotation).
func (v *Verifier) VerifySignature(body []byte, sig string) error {
	if sig == "" {
		return ErrNoSignature
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sig))
	if err != nil {
		if raw, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(sig), "=")); err != nil {
			return fmt.Errorf("%w: not base64", ErrBadSignature)
		}
	}
	digest := sha256.Sum256(body)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.keys == nil {
		if v.path == "" {
			return ErrNoKeyset
		}
		if err := v.reload(); err != nil {
			return err
		}
	}
	if len(raw) > 5 && raw[0] == 0x01 {
		id := binary.BigEndian.Uint32(raw[1:5])
		k, ok := v.keys[id]
		if !ok && time.Since(v.loadedAt) > 10*time.Second {
			if err := v.reload(); err == nil {
				k, ok = v.keys[id]
			}
		}
		if !ok {
			return ErrUnknownKey
		}
		if !k.raw && ecdsa.VerifyASN1(k.pub, digest[:], raw[5:]) {
			return nil
		}
		return ErrBadSignature
	}
	for _, k := range v.keys {
		if k.raw && ecdsa.VerifyASN1(k.pub, digest[:], raw) {
			return nil
		}
	}
	return ErrBadSignature
}

// Signature returns the signature header of a request (either name).
func Signature(get func(string) string) string {
	if s := get(SignatureHeader); s != "" {
		return s
	}
	return get(LegacySignatureHeader)
}

// IsVerification reports whether body is the subscriber handshake
// {"type":"verification"}.
func IsVerification(body []byte) bool {
	var v struct {
		Type string `json:"type"`
	}
	return json.Unmarshal(body, &v) == nil && v.Type == "verification"
}

// Notification is one data-change notification (metadata only).
type Notification struct {
	HealthUserID string                 `json:"healthUserId"`
	Operation    string                 `json:"operation"` // UPSERT or DELETE
	DataType     string                 `json:"dataType"`
	Intervals    []NotificationInterval `json:"intervals"`
}

// NotificationInterval is a changed range.
type NotificationInterval struct {
	PhysicalTimeInterval *struct {
		StartTime time.Time `json:"startTime"`
		EndTime   time.Time `json:"endTime"`
	} `json:"physicalTimeInterval,omitempty"`
	CivilDateTimeInterval *struct {
		Start CivilDateTime `json:"start"`
		End   CivilDateTime `json:"end"`
	} `json:"civilDateTimeInterval,omitempty"`
}

// ParseNotifications reads a payload: {"data": {...}}, an array of those,
// or a bare notification object. It returns an error when nothing in it is
// a notification with a healthUserId and a dataType.
func ParseNotifications(body []byte) ([]Notification, error) {
	type envelope struct {
		Data *Notification `json:"data"`
		Notification
	}
	var items []envelope
	trimmed := strings.TrimSpace(string(body))
	if strings.HasPrefix(trimmed, "[") {
		if err := json.Unmarshal(body, &items); err != nil {
			return nil, errors.New("notification array is not valid JSON")
		}
	} else {
		var one envelope
		if err := json.Unmarshal(body, &one); err != nil {
			return nil, errors.New("notification is not valid JSON")
		}
		items = []envelope{one}
	}
	var out []Notification
	for _, it := range items {
		n := it.Notification
		if it.Data != nil {
			n = *it.Data
		}
		if n.HealthUserID == "" || n.DataType == "" {
			return nil, errors.New("notification lacks healthUserId or dataType")
		}
		switch n.Operation {
		case "", "UPSERT", "DELETE":
		default:
			return nil, fmt.Errorf("notification operation %q is not UPSERT or DELETE", n.Operation)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("payload holds no notification")
	}
	return out, nil
}

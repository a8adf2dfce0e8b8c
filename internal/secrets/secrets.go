// Package secrets encrypts tokens and private keys at rest with AES-256-GCM.
//
// TOKEN_ENCRYPTION_KEYS holds one or more keys as kid:base64key (32 bytes
// after decoding), comma-separated; the first encrypts, all decrypt, so a key
// is rotated by putting the new one first, re-encrypting (`switchboard
// reencrypt`), then removing the old one. A ciphertext carries the id of the
// key that sealed it: "v1:<kid>:<base64(nonce|sealed)>". The caller's
// associated data (for example "device_connections:42:access_token") binds a
// ciphertext to its row and column, so one cannot be swapped for another.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrUnknownKey is returned by Open for a ciphertext sealed with a key that
// is not configured.
var ErrUnknownKey = errors.New("ciphertext was sealed with a key that is not configured")

// ErrNoKeys is returned by Parse when no key is configured.
var ErrNoKeys = errors.New("TOKEN_ENCRYPTION_KEYS is empty")

var kidPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// Keyring holds the configured keys. It is safe for concurrent use.
type Keyring struct {
	primary string
	aeads   map[string]cipher.AEAD
}

// Parse reads TOKEN_ENCRYPTION_KEYS. Errors name the bad entry by position
// and never echo key material.
func Parse(s string) (*Keyring, error) {
	k := &Keyring{aeads: map[string]cipher.AEAD{}}
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		kid, b64, ok := strings.Cut(part, ":")
		if !ok || !kidPattern.MatchString(kid) {
			return nil, fmt.Errorf("TOKEN_ENCRYPTION_KEYS entry %d: want kid:base64key with a kid of letters, digits, _ or -", i+1)
		}
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(key) != 32 {
			return nil, fmt.Errorf("TOKEN_ENCRYPTION_KEYS entry %d (%s): key must be 32 bytes, base64", i+1, kid)
		}
		if _, dup := k.aeads[kid]; dup {
			return nil, fmt.Errorf("TOKEN_ENCRYPTION_KEYS names key %s twice", kid)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("TOKEN_ENCRYPTION_KEYS entry %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("TOKEN_ENCRYPTION_KEYS entry %d: %w", i+1, err)
		}
		if k.primary == "" {
			k.primary = kid
		}
		k.aeads[kid] = aead
	}
	if k.primary == "" {
		return nil, ErrNoKeys
	}
	return k, nil
}

// PrimaryKeyID is the id of the key Seal uses.
func (k *Keyring) PrimaryKeyID() string { return k.primary }

const version = "v1"

// Seal encrypts plaintext with the primary key, bound to aad.
func (k *Keyring) Seal(plaintext, aad []byte) (string, error) {
	aead := k.aeads[k.primary]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("error reading random nonce: %w", err)
	}
	sealed := aead.Seal(nonce, nonce, plaintext, aad)
	return version + ":" + k.primary + ":" + base64.RawStdEncoding.EncodeToString(sealed), nil
}

// Open decrypts a ciphertext made by Seal with the same aad. It returns
// ErrUnknownKey when its key is not configured, and an error when it was
// tampered with, bound to other aad, or is not a ciphertext.
func (k *Keyring) Open(ciphertext string, aad []byte) ([]byte, error) {
	kid, err := KeyID(ciphertext)
	if err != nil {
		return nil, err
	}
	aead, ok := k.aeads[kid]
	if !ok {
		return nil, fmt.Errorf("key %s: %w", kid, ErrUnknownKey)
	}
	raw, err := base64.RawStdEncoding.DecodeString(ciphertext[len(version)+len(kid)+2:])
	if err != nil || len(raw) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("ciphertext is malformed")
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], aad)
	if err != nil {
		return nil, errors.New("ciphertext does not authenticate (tampered, or bound to another record)")
	}
	return plain, nil
}

// KeyID returns the id of the key that sealed ciphertext.
func KeyID(ciphertext string) (string, error) {
	parts := strings.SplitN(ciphertext, ":", 3)
	if len(parts) != 3 || parts[0] != version || !kidPattern.MatchString(parts[1]) {
		return "", errors.New("ciphertext is malformed")
	}
	return parts[1], nil
}

// NeedsRotation reports whether ciphertext was sealed with a key other than
// the primary one.
func (k *Keyring) NeedsRotation(ciphertext string) bool {
	kid, err := KeyID(ciphertext)
	return err == nil && kid != k.primary
}

// Reseal opens ciphertext and seals it again with the primary key.
func (k *Keyring) Reseal(ciphertext string, aad []byte) (string, error) {
	plain, err := k.Open(ciphertext, aad)
	if err != nil {
		return "", err
	}
	return k.Seal(plain, aad)
}

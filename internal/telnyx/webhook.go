package telnyx

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Webhook signature headers.
const (
	// HeaderSignature holds base64 of the 64-byte Ed25519 signature.
	HeaderSignature = "Telnyx-Signature-Ed25519"
	// HeaderTimestamp holds the signing time in Unix seconds.
	HeaderTimestamp = "Telnyx-Timestamp"
)

// WebhookTolerance is how far a webhook's timestamp may be from now, either
// way (the tolerance of Telnyx's SDKs).
const WebhookTolerance = 5 * time.Minute

// Errors of VerifyWebhook. Every error it returns is one of them, possibly
// wrapped; a webhook failing any of them is answered 403 and not stored.
var (
	// ErrMissingHeaders: the signature or the timestamp header is empty.
	ErrMissingHeaders = errors.New("telnyx webhook: missing signature headers")
	// ErrBadTimestamp: the timestamp is not a Unix time in seconds.
	ErrBadTimestamp = errors.New("telnyx webhook: malformed timestamp")
	// ErrStaleTimestamp: the timestamp is more than WebhookTolerance away
	// from now, in the past or in the future (a replay, or a wrong clock).
	ErrStaleTimestamp = errors.New("telnyx webhook: timestamp outside the tolerance")
	// ErrBadSignature: the signature is not base64 of 64 bytes, or does not
	// verify over timestamp|body with the public key (a tampered body, or
	// another account's key).
	ErrBadSignature = errors.New("telnyx webhook: bad signature")
	// ErrNoPublicKey: the key given is not a 32-byte Ed25519 public key.
	ErrNoPublicKey = errors.New("telnyx webhook: no usable public key")
)

// VerifyWebhook checks a webhook with the configured public key; see
// Verify.
func (c *Client) VerifyWebhook(body []byte, signatureB64, timestamp string, now time.Time) error {
	return Verify(c.publicKey, body, signatureB64, timestamp, now)
}

// Verify checks a Telnyx webhook: signatureB64 (the telnyx-signature-ed25519
// header) must be Telnyx's Ed25519 signature of timestamp + "|" + body with
// publicKey, and timestamp (the telnyx-timestamp header, Unix seconds) must
// be within WebhookTolerance of now, either way. body must be the raw bytes
// received: re-serialised JSON does not verify.
//
// It returns nil, or an error wrapping ErrMissingHeaders, ErrBadTimestamp,
// ErrStaleTimestamp, ErrBadSignature or ErrNoPublicKey. The error's text
// holds no part of the body.
func Verify(publicKey ed25519.PublicKey, body []byte, signatureB64, timestamp string, now time.Time) error {
	signatureB64, timestamp = strings.TrimSpace(signatureB64), strings.TrimSpace(timestamp)
	if len(publicKey) != ed25519.PublicKeySize {
		return ErrNoPublicKey
	}
	if signatureB64 == "" || timestamp == "" {
		return ErrMissingHeaders
	}
	secs, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrBadTimestamp
	}
	if skew := now.Sub(time.Unix(secs, 0)); skew > WebhookTolerance || skew < -WebhookTolerance {
		return fmt.Errorf("%w: %s off", ErrStaleTimestamp, skew.Round(time.Second))
	}
	sig, err := base64.StdEncoding.DecodeString(signatureB64)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: not base64 of %d bytes", ErrBadSignature, ed25519.SignatureSize)
	}
	if !ed25519.Verify(publicKey, SignedPayload(timestamp, body), sig) {
		return ErrBadSignature
	}
	return nil
}

// SignedPayload is what Telnyx signs for a webhook: timestamp + "|" + body.
func SignedPayload(timestamp string, body []byte) []byte {
	msg := make([]byte, 0, len(timestamp)+1+len(body))
	msg = append(msg, timestamp...)
	msg = append(msg, '|')
	return append(msg, body...)
}

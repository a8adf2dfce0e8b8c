// Package smart implements the client side of SMART Backend Services
// (client_credentials with a private_key_jwt assertion, RS384 or ES384):
// signing keys, their public JWKS, and a token source that signs a fresh
// assertion (unique jti, exp at most 5 minutes ahead) per token request,
// caches the token until shortly before it expires and can be invalidated
// after a 401.
package smart

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Algorithms SMART Backend Services allows.
const (
	RS384 = "RS384"
	ES384 = "ES384"
)

// AssertionType is the client_assertion_type of a private_key_jwt.
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// MaxAssertionLifetime is the longest exp - now an assertion may have.
const MaxAssertionLifetime = 5 * time.Minute

// Key is a signing key with its id and algorithm.
type Key struct {
	ID     string
	Alg    string
	Signer crypto.Signer
}

// GenerateKey makes a new RS384 (RSA 3072) or ES384 (P-384) key with a
// random key id. It returns an error for another algorithm.
func GenerateKey(alg string) (Key, error) {
	var s crypto.Signer
	var err error
	switch alg {
	case RS384:
		s, err = rsa.GenerateKey(rand.Reader, 3072)
	case ES384:
		s, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		return Key{}, fmt.Errorf("smart: algorithm must be RS384 or ES384")
	}
	if err != nil {
		return Key{}, fmt.Errorf("smart: error generating key: %w", err)
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return Key{}, err
	}
	return Key{ID: base64.RawURLEncoding.EncodeToString(b), Alg: alg, Signer: s}, nil
}

// MarshalPrivate encodes the private key as PKCS#8 DER (to be sealed).
func (k Key) MarshalPrivate() ([]byte, error) {
	return x509.MarshalPKCS8PrivateKey(k.Signer)
}

// ParseKey reads a PKCS#8 DER private key made by MarshalPrivate and checks
// it fits alg.
func ParseKey(id, alg string, der []byte) (Key, error) {
	p, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return Key{}, fmt.Errorf("smart: error parsing private key: %w", err)
	}
	switch s := p.(type) {
	case *rsa.PrivateKey:
		if alg != RS384 {
			return Key{}, errors.New("smart: RSA key for a non-RS384 algorithm")
		}
		return Key{ID: id, Alg: alg, Signer: s}, nil
	case *ecdsa.PrivateKey:
		if alg != ES384 || s.Curve != elliptic.P384() {
			return Key{}, errors.New("smart: EC key must be P-384 with ES384")
		}
		return Key{ID: id, Alg: alg, Signer: s}, nil
	}
	return Key{}, errors.New("smart: unsupported key type")
}

// PublicJWK returns the public key as a JWK (kty, kid, alg, use sig).
func (k Key) PublicJWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.Signer.Public(), KeyID: k.ID, Algorithm: k.Alg, Use: "sig"}
}

// JWKS renders public keys as a JSON Web Key Set.
func JWKS(keys ...jose.JSONWebKey) ([]byte, error) {
	return json.MarshalIndent(jose.JSONWebKeySet{Keys: keys}, "", "  ")
}

func (k Key) method() jwt.SigningMethod {
	if k.Alg == ES384 {
		return jwt.SigningMethodES384
	}
	return jwt.SigningMethodRS384
}

// Assertion signs a client assertion for clientID toward tokenURL.
func (k Key) Assertion(clientID, tokenURL string, now time.Time, lifetime time.Duration) (string, error) {
	if lifetime <= 0 || lifetime > MaxAssertionLifetime {
		lifetime = MaxAssertionLifetime
	}
	jti := make([]byte, 18)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	t := jwt.NewWithClaims(k.method(), jwt.RegisteredClaims{
		Issuer:    clientID,
		Subject:   clientID,
		Audience:  jwt.ClaimStrings{tokenURL},
		ExpiresAt: jwt.NewNumericDate(now.Add(lifetime)),
		IssuedAt:  jwt.NewNumericDate(now),
		ID:        base64.RawURLEncoding.EncodeToString(jti),
	})
	t.Header["kid"] = k.ID
	t.Header["typ"] = "JWT"
	return t.SignedString(k.Signer)
}

// Config is one endpoint's SMART Backend Services client.
type Config struct {
	ClientID string
	TokenURL string
	Scopes   []string
	Key      Key
	// HTTPClient makes token requests; nil means a 30 s timeout client.
	HTTPClient *http.Client
	// Early is how long before expiry a cached token is replaced (default
	// 60 s), at most a quarter of the token's lifetime: a token that lives
	// 60 s or less is still reused for most of its life.
	Early time.Duration
}

// TokenError is a failed token request: the HTTP status and OAuth error
// code only (the body is not kept).
type TokenError struct {
	Status int
	Code   string
	Err    error
}

func (e *TokenError) Error() string {
	s := "smart: token request failed"
	if e.Status != 0 {
		s += fmt.Sprintf(": HTTP %d", e.Status)
	}
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *TokenError) Unwrap() error { return e.Err }

// Source is a cached, invalidatable token source. Safe for concurrent use.
type Source struct {
	cfg Config
	mu  sync.Mutex
	tok *oauth2.Token
	// lifetime is how long the cached token was issued for.
	lifetime time.Duration
	// Requests counts token requests made (for tests and metrics).
	requests int
}

// NewSource returns a token source for cfg.
func NewSource(cfg Config) *Source {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Early <= 0 {
		cfg.Early = time.Minute
	}
	return &Source{cfg: cfg}
}

// Token returns a cached access token, or requests a new one when none is
// cached or it expires within Early. Errors are *TokenError.
func (s *Source) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok != nil && s.tok.AccessToken != "" && (s.tok.Expiry.IsZero() || time.Until(s.tok.Expiry) > s.early()) {
		return s.tok.AccessToken, nil
	}
	start := time.Now()
	tok, err := s.fetch(ctx)
	if err != nil {
		return "", err
	}
	s.tok = tok
	s.lifetime = 0
	if !tok.Expiry.IsZero() {
		s.lifetime = tok.Expiry.Sub(start)
	}
	return tok.AccessToken, nil
}

// early is how long before its expiry the cached token is replaced.
func (s *Source) early() time.Duration {
	if s.lifetime > 0 {
		return min(s.cfg.Early, s.lifetime/4)
	}
	return s.cfg.Early
}

// Invalidate drops the cached token (after a 401).
func (s *Source) Invalidate() {
	s.mu.Lock()
	s.tok = nil
	s.mu.Unlock()
}

// Requests reports how many token requests were made.
func (s *Source) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// fetch builds the clientcredentials config per request: each assertion
// needs its own jti and exp.
func (s *Source) fetch(ctx context.Context) (*oauth2.Token, error) {
	s.requests++
	assertion, err := s.cfg.Key.Assertion(s.cfg.ClientID, s.cfg.TokenURL, time.Now(), MaxAssertionLifetime)
	if err != nil {
		return nil, &TokenError{Err: err}
	}
	cc := clientcredentials.Config{
		ClientID:  s.cfg.ClientID,
		TokenURL:  s.cfg.TokenURL,
		Scopes:    s.cfg.Scopes,
		AuthStyle: oauth2.AuthStyleInParams,
		EndpointParams: url.Values{
			"client_assertion_type": {AssertionType},
			"client_assertion":      {assertion},
		},
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, s.cfg.HTTPClient)
	tok, err := cc.Token(ctx)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			status := 0
			if re.Response != nil {
				status = re.Response.StatusCode
			}
			return nil, &TokenError{Status: status, Code: safeCode(re.ErrorCode)}
		}
		return nil, &TokenError{Err: errors.New("transport error")}
	}
	return tok, nil
}

func safeCode(s string) string {
	if len(s) > 64 {
		return ""
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r == '_') {
			return ""
		}
	}
	return s
}

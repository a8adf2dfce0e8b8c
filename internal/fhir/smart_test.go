package fhir_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/fhir"
	"github.com/switchboard-health/switchboard/internal/fhir/smart"
)

// tokenServer is a SMART token endpoint that verifies each client assertion
// against the registered JWKS: signature, alg, kid, iss = sub = client id,
// aud = its own URL, exp at most five minutes ahead, jti never reused.
type tokenServer struct {
	t        *testing.T
	url      string
	jwks     jose.JSONWebKeySet
	clientID string
	mu       sync.Mutex
	jtis     map[string]bool
	issued   []string
	// expiresIn is the tokens' lifetime in seconds (default 300).
	expiresIn int
}

func newTokenServer(t *testing.T, clientID string, keys ...jose.JSONWebKey) *tokenServer {
	ts := &tokenServer{t: t, clientID: clientID, jwks: jose.JSONWebKeySet{Keys: keys}, jtis: map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(srv.Close)
	ts.url = srv.URL + "/token"
	return ts
}

func (ts *tokenServer) fail(w http.ResponseWriter, why string) {
	ts.t.Logf("token endpoint refused: %s", why)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprint(w, `{"error":"invalid_client"}`)
}

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "client_credentials" ||
		r.Form.Get("client_assertion_type") != smart.AssertionType {
		ts.fail(w, "form")
		return
	}
	var claims jwt.RegisteredClaims
	tok, err := jwt.ParseWithClaims(r.Form.Get("client_assertion"), &claims, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		keys := ts.jwks.Key(kid)
		if len(keys) != 1 {
			return nil, fmt.Errorf("unknown kid")
		}
		if tok.Header["alg"] != keys[0].Algorithm {
			return nil, fmt.Errorf("alg does not match the registered key")
		}
		return keys[0].Key, nil
	}, jwt.WithValidMethods([]string{"RS384", "ES384"}), jwt.WithAudience(ts.url), jwt.WithIssuer(ts.clientID),
		jwt.WithSubject(ts.clientID), jwt.WithExpirationRequired())
	if err != nil || !tok.Valid {
		ts.fail(w, fmt.Sprint(err))
		return
	}
	if claims.ExpiresAt.Time.After(time.Now().Add(5*time.Minute + 5*time.Second)) {
		ts.fail(w, "exp too far")
		return
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if claims.ID == "" || ts.jtis[claims.ID] {
		ts.fail(w, "jti reused")
		return
	}
	ts.jtis[claims.ID] = true
	access := fmt.Sprintf("token-%d", len(ts.issued)+1)
	ts.issued = append(ts.issued, access)
	w.Header().Set("Content-Type", "application/json")
	expires := ts.expiresIn
	if expires == 0 {
		expires = 300
	}
	json.NewEncoder(w).Encode(map[string]any{"access_token": access, "token_type": "bearer", "expires_in": expires, "scope": r.Form.Get("scope")})
}

func TestSMARTBackendServices(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{smart.RS384, smart.ES384} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			key, err := smart.GenerateKey(alg)
			require.NoError(t, err)
			ts := newTokenServer(t, "switchboard-client", key.PublicJWK())
			src := smart.NewSource(smart.Config{ClientID: "switchboard-client", TokenURL: ts.url, Scopes: []string{"system/Patient.cu"}, Key: key})

			tok, err := src.Token(context.Background())
			require.NoError(t, err)
			require.Equal(t, "token-1", tok)
			again, err := src.Token(context.Background())
			require.NoError(t, err)
			require.Equal(t, tok, again, "cached until shortly before expiry")
			require.Equal(t, 1, src.Requests())

			// The FHIR server rejects the first token as expired: the
			// client gets a fresh one (new assertion, new jti) and retries once.
			var seen []string
			fhirSrv := newJSONServer(t, func(w http.ResponseWriter, r *http.Request) {
				seen = append(seen, r.Header.Get("Authorization"))
				if r.Header.Get("Authorization") == "Bearer token-1" {
					w.WriteHeader(http.StatusUnauthorized)
					fmt.Fprint(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"expired"}]}`)
					return
				}
				fmt.Fprint(w, `{"resourceType":"Patient","id":"1","meta":{"versionId":"1"}}`)
			})
			c, err := fhir.NewClient(fhirSrv, nil, src)
			require.NoError(t, err)
			r, err := c.Read(context.Background(), "Patient", "1")
			require.NoError(t, err)
			require.Equal(t, "1", r.VersionID())
			require.Equal(t, []string{"Bearer token-1", "Bearer token-2"}, seen)
			require.Equal(t, 2, src.Requests())
		})
	}

	t.Run("OnlyOneRefreshOn401", func(t *testing.T) {
		t.Parallel()
		key, err := smart.GenerateKey(smart.ES384)
		require.NoError(t, err)
		ts := newTokenServer(t, "c", key.PublicJWK())
		src := smart.NewSource(smart.Config{ClientID: "c", TokenURL: ts.url, Key: key})
		calls := 0
		fhirSrv := newJSONServer(t, func(w http.ResponseWriter, r *http.Request) {
			calls++
			w.WriteHeader(http.StatusUnauthorized)
		})
		c, _ := fhir.NewClient(fhirSrv, nil, src)
		_, err = c.Read(context.Background(), "Patient", "1")
		require.Equal(t, fhir.ClassAuth, fhir.Classify(err, 1))
		require.Equal(t, 2, calls)
	})

	t.Run("UnregisteredKeyIsRefused", func(t *testing.T) {
		t.Parallel()
		registered, _ := smart.GenerateKey(smart.RS384)
		other, _ := smart.GenerateKey(smart.RS384)
		ts := newTokenServer(t, "c", registered.PublicJWK())
		src := smart.NewSource(smart.Config{ClientID: "c", TokenURL: ts.url, Key: other})
		_, err := src.Token(context.Background())
		var te *smart.TokenError
		require.ErrorAs(t, err, &te)
		require.Equal(t, "invalid_client", te.Code)
		require.Equal(t, fhir.ClassAuth, fhir.Classify(err, 1))
	})

	t.Run("KeysRoundTripAndPublishAsJWKS", func(t *testing.T) {
		t.Parallel()
		for _, alg := range []string{smart.RS384, smart.ES384} {
			k, err := smart.GenerateKey(alg)
			require.NoError(t, err)
			der, err := k.MarshalPrivate()
			require.NoError(t, err)
			back, err := smart.ParseKey(k.ID, alg, der)
			require.NoError(t, err)
			set, err := smart.JWKS(back.PublicJWK())
			require.NoError(t, err)
			var parsed jose.JSONWebKeySet
			require.NoError(t, json.Unmarshal(set, &parsed))
			require.Len(t, parsed.Keys, 1)
			require.True(t, parsed.Keys[0].IsPublic())
			require.Equal(t, k.ID, parsed.Keys[0].KeyID)
			require.Equal(t, alg, parsed.Keys[0].Algorithm)
			require.Equal(t, "sig", parsed.Keys[0].Use)
			require.NotContains(t, string(set), `"d"`, "no private part")
		}
	})
}

// Tokens that live a minute or less are reused while valid, not fetched
// for every call (the 60 s early refresh used to cover their whole life).
func TestSMARTShortLivedTokensAreReused(t *testing.T) {
	t.Parallel()
	for _, life := range []int{30, 60} {
		t.Run(fmt.Sprint(life), func(t *testing.T) {
			t.Parallel()
			key, err := smart.GenerateKey(smart.ES384)
			require.NoError(t, err)
			ts := newTokenServer(t, "c", key.PublicJWK())
			ts.expiresIn = life
			src := smart.NewSource(smart.Config{ClientID: "c", TokenURL: ts.url, Key: key})
			calls := 0
			fhirSrv := newJSONServer(t, func(w http.ResponseWriter, r *http.Request) {
				calls++
				fmt.Fprint(w, `{"resourceType":"Patient","id":"1","meta":{"versionId":"1"}}`)
			})
			c, err := fhir.NewClient(fhirSrv, nil, src)
			require.NoError(t, err)
			for i := 0; i < 10; i++ {
				_, err := c.Read(context.Background(), "Patient", "1")
				require.NoError(t, err)
			}
			require.Equal(t, 10, calls)
			require.Equal(t, 1, src.Requests(), "one token for ten calls")
		})
	}
}

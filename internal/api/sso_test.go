package api_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/api"
)

// oidcProvider is a small in-process OpenID provider: discovery, JWKS, an
// authorize endpoint that signs in whoever the test says, and a token
// endpoint that checks the code and PKCE verifier and answers an RS256 ID
// token.
type oidcProvider struct {
	srv    *httptest.Server
	key    *rsa.PrivateKey
	signer jose.Signer

	mu     sync.Mutex
	user   map[string]any // the next login's claims
	codes  map[string]codeGrant
	tamper func(claims map[string]any)
}

type codeGrant struct {
	claims    map[string]any
	nonce     string
	challenge string
}

func newOIDCProvider(t *testing.T) *oidcProvider {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, nil)
	require.NoError(t, err)
	p := &oidcProvider{key: key, signer: signer, codes: map[string]codeGrant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": p.srv.URL, "authorization_endpoint": p.srv.URL + "/authorize", "token_endpoint": p.srv.URL + "/token",
			"jwks_uri": p.srv.URL + "/jwks", "id_token_signing_alg_values_supported": []string{"RS256"},
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		p.mu.Lock()
		code := "code-" + q.Get("state")[:8]
		p.codes[code] = codeGrant{claims: p.user, nonce: q.Get("nonce"), challenge: q.Get("code_challenge")}
		p.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?code="+code+"&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		p.mu.Lock()
		g, ok := p.codes[r.PostForm.Get("code")]
		delete(p.codes, r.PostForm.Get("code"))
		tamper := p.tamper
		p.mu.Unlock()
		if !ok || r.PostForm.Get("code_verifier") == "" || g.challenge == "" {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		claims := map[string]any{"iss": p.srv.URL, "aud": "switchboard", "sub": "user-1", "nonce": g.nonce,
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
		for k, v := range g.claims {
			claims[k] = v
		}
		if tamper != nil {
			tamper(claims)
		}
		raw, err := jwt.Signed(p.signer).Claims(claims).Serialize()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "id_token": raw, "expires_in": 3600})
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *oidcProvider) signIn(claims map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.user = claims
}

// browser is a client with a cookie jar that follows redirects.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar}
}

func getHTML(t *testing.T, c *http.Client, u string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/html")
	res, err := c.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = res.Body.Close() })
	return res
}

// TestSSO: OpenID Connect login for River UI and /status against an
// in-process provider; allowed emails and groups by configuration; Basic
// auth still works beside it.
func TestSSO(t *testing.T) {
	t.Parallel()
	idp := newOIDCProvider(t)

	// The api must know its own public URL before New: serve through a
	// handler set afterwards.
	var h http.Handler
	apiSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(apiSrv.Close)
	b := setup(t, func(c *api.Config) {
		c.PublicBaseURL = apiSrv.URL
		c.SSO = api.SSOConfig{IssuerURL: idp.srv.URL, ClientID: "switchboard", ClientSecret: "s",
			AllowedEmails: []string{"ops@hospital.example"}, AllowedGroups: []string{"switchboard-operators"}}
	})
	h = b.handler

	t.Run("AllowedEmailReachesRiverUIAndStatus", func(t *testing.T) {
		idp.signIn(map[string]any{"email": "ops@hospital.example", "email_verified": true})
		c := browser(t)
		res := getHTML(t, c, apiSrv.URL+"/riverui/")
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.Equal(t, "/riverui/", res.Request.URL.Path, "back where it started")
		res = getHTML(t, c, apiSrv.URL+"/status")
		require.Equal(t, http.StatusOK, res.StatusCode)
	})

	t.Run("AllowedGroupReachesStatus", func(t *testing.T) {
		idp.signIn(map[string]any{"email": "someone@hospital.example", "groups": []string{"nurses", "switchboard-operators"}})
		res := getHTML(t, browser(t), apiSrv.URL+"/status")
		require.Equal(t, http.StatusOK, res.StatusCode)
	})

	t.Run("OthersAreRefused", func(t *testing.T) {
		for name, claims := range map[string]map[string]any{
			"UnlistedEmail":      {"email": "visitor@example.com", "groups": []string{"nurses"}},
			"UnverifiedEmail":    {"email": "ops@hospital.example", "email_verified": false},
			"NoEmailNoGroups":    {},
			"GroupClaimAsString": {"groups": "nurses"},
		} {
			idp.signIn(claims)
			c := browser(t)
			res := getHTML(t, c, apiSrv.URL+"/status")
			require.Equal(t, http.StatusForbidden, res.StatusCode, name)
			res = getHTML(t, c, apiSrv.URL+"/status")
			require.Equal(t, http.StatusForbidden, res.StatusCode, "%s: still no session", name)
		}
	})

	t.Run("TamperedTokensAreRefused", func(t *testing.T) {
		for name, tamper := range map[string]func(map[string]any){
			"WrongAudience": func(c map[string]any) { c["aud"] = "another-app" },
			"WrongNonce":    func(c map[string]any) { c["nonce"] = "replayed" },
			"Expired":       func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() },
			"WrongIssuer":   func(c map[string]any) { c["iss"] = "https://evil.example" },
		} {
			idp.signIn(map[string]any{"email": "ops@hospital.example"})
			idp.mu.Lock()
			idp.tamper = tamper
			idp.mu.Unlock()
			res := getHTML(t, browser(t), apiSrv.URL+"/status")
			require.Equal(t, http.StatusForbidden, res.StatusCode, name)
		}
		idp.mu.Lock()
		idp.tamper = nil
		idp.mu.Unlock()
	})

	t.Run("CallbackFromAnotherBrowserIsRefused", func(t *testing.T) {
		idp.signIn(map[string]any{"email": "ops@hospital.example"})
		// The victim's browser starts a login; the attacker's browser
		// (no flow cookie) presents the provider's answer.
		victim := &http.Client{Jar: browser(t).Jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if strings.HasPrefix(req.URL.Path, "/auth/callback") {
				return http.ErrUseLastResponse
			}
			return nil
		}}
		res := getHTML(t, victim, apiSrv.URL+"/status")
		require.Equal(t, http.StatusFound, res.StatusCode)
		callback := res.Header.Get("Location")
		require.Contains(t, callback, "/auth/callback?code=")
		res = getHTML(t, browser(t), callback)
		require.Equal(t, http.StatusForbidden, res.StatusCode)
	})

	t.Run("ForgedSessionCookieIsRefused", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodGet, "/status", nil)
		req.AddCookie(&http.Cookie{Name: "switchboard_session", Value: "eyJtIjoib3BzQGhvc3BpdGFsLmV4YW1wbGUiLCJlIjo5OTk5OTk5OTk5fQ.AAAA"})
		rec := httptest.NewRecorder()
		b.handler.ServeHTTP(rec, req)
		require.Equal(t, http.StatusUnauthorized, rec.Code)
	})

	t.Run("OpenRedirectIsRefused", func(t *testing.T) {
		idp.signIn(map[string]any{"email": "ops@hospital.example"})
		res := getHTML(t, browser(t), apiSrv.URL+"/auth/login?next=//evil.example/x")
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.Equal(t, apiSrv.URL+"/riverui/", res.Request.URL.String())
	})

	t.Run("BasicAuthStays", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodGet, "/status", nil)
		req.SetBasicAuth(testUser, testPassword)
		rec := httptest.NewRecorder()
		b.handler.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code)
		// A script without credentials gets 401, not a redirect.
		rec = httptest.NewRecorder()
		b.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status", nil))
		require.Equal(t, http.StatusUnauthorized, rec.Code)
	})
}

package googlehealth_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-health/switchboard/internal/googlehealth"
)

const (
	clientID     = "123-abc.apps.googleusercontent.com"
	clientSecret = "GOCSPX-client-secret"
	refreshTok   = "1//0refresh-token"
	redirectURI  = "https://switchboard.example.com/oauth/google-health/callback"
)

// fakeOAuth is Google's token and revoke endpoints (RFC 6749 as Google
// speaks it): form posts with the client's credentials in the body, JSON
// answers, 400 {"error":"invalid_grant"} for a dead code or refresh token.
type fakeOAuth struct {
	// answer, when set, replaces the token endpoint's answer.
	answer func(w http.ResponseWriter, form url.Values)

	mu     sync.Mutex
	forms  []url.Values
	codes  map[string]string // code → PKCE challenge
	dead   bool              // every refresh token is revoked
	rotate string            // a refresh returns this new refresh token
}

func newFakeOAuth(t *testing.T) (*fakeOAuth, googlehealth.Config, *httptest.Server) {
	f := &fakeOAuth{codes: map[string]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, googlehealth.Config{
		ClientID: clientID, ClientSecret: clientSecret,
		AuthURL: srv.URL + "/o/oauth2/v2/auth", TokenURL: srv.URL + "/token", RevokeURL: srv.URL + "/revoke",
	}, srv
}

func oauthJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeOAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		oauthJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	_ = r.ParseForm()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forms = append(f.forms, r.PostForm)
	form := r.PostForm
	if r.URL.Path == "/revoke" {
		if form.Get("token") == refreshTok || form.Get("token") == accessToken {
			w.WriteHeader(http.StatusOK)
			return
		}
		oauthJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_token", "error_description": "Token expired or revoked"})
		return
	}
	if f.answer != nil {
		f.answer(w, form)
		return
	}
	if form.Get("client_id") != clientID || form.Get("client_secret") != clientSecret {
		oauthJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": "The OAuth client was not found."})
		return
	}
	grant := map[string]any{"access_token": accessToken, "expires_in": 3599, "token_type": "Bearer",
		"scope": googlehealth.ScopePrefix + "activity_and_fitness.readonly " + googlehealth.ScopePrefix + "sleep.readonly"}
	switch form.Get("grant_type") {
	case "authorization_code":
		challenge, ok := f.codes[form.Get("code")]
		delete(f.codes, form.Get("code"))
		sum := sha256.Sum256([]byte(form.Get("code_verifier")))
		if !ok || form.Get("redirect_uri") != redirectURI || base64.RawURLEncoding.EncodeToString(sum[:]) != challenge {
			oauthJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "Bad Request"})
			return
		}
		grant["refresh_token"] = refreshTok
	case "refresh_token":
		if f.dead || form.Get("refresh_token") != refreshTok {
			oauthJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "Token has been expired or revoked: " + form.Get("refresh_token")})
			return
		}
		if f.rotate != "" {
			grant["refresh_token"] = f.rotate
		}
	default:
		oauthJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	oauthJSON(w, http.StatusOK, grant)
}

// consent is the user agreeing at AuthCodeURL: a code bound to its PKCE
// challenge.
func (f *fakeOAuth) consent(t *testing.T, authURL string) string {
	t.Helper()
	u, err := url.Parse(authURL)
	require.NoError(t, err)
	require.Equal(t, "S256", u.Query().Get("code_challenge_method"))
	f.mu.Lock()
	defer f.mu.Unlock()
	code := fmt.Sprintf("4/0code-%d", len(f.codes)+len(f.forms))
	f.codes[code] = u.Query().Get("code_challenge")
	return code
}

func (f *fakeOAuth) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.forms)
}

func TestOAuth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("ConsentURLAsksForOfflineAccessWithPKCE", func(t *testing.T) {
		t.Parallel()
		_, cfg, srv := newFakeOAuth(t)
		verifier := googlehealth.NewCodeVerifier()
		u, err := url.Parse(googlehealth.NewOAuth(cfg, srv.Client()).AuthCodeURL("state-1", verifier, redirectURI))
		require.NoError(t, err)
		q := u.Query()
		require.Equal(t, "/o/oauth2/v2/auth", u.Path)
		require.Equal(t, "code", q.Get("response_type"))
		require.Equal(t, clientID, q.Get("client_id"))
		require.Equal(t, redirectURI, q.Get("redirect_uri"))
		require.Equal(t, "state-1", q.Get("state"))
		require.Equal(t, "offline", q.Get("access_type"), "else no refresh token")
		require.Equal(t, "consent", q.Get("prompt"))
		require.Equal(t, strings.Join(googlehealth.DefaultScopes, " "), q.Get("scope"))
		sum := sha256.Sum256([]byte(verifier))
		require.Equal(t, base64.RawURLEncoding.EncodeToString(sum[:]), q.Get("code_challenge"))
		require.Equal(t, "S256", q.Get("code_challenge_method"))
		require.Empty(t, q.Get("client_secret"))
	})

	t.Run("ExchangeProvesTheVerifier", func(t *testing.T) {
		t.Parallel()
		f, cfg, srv := newFakeOAuth(t)
		o := googlehealth.NewOAuth(cfg, srv.Client())
		verifier := googlehealth.NewCodeVerifier()
		code := f.consent(t, o.AuthCodeURL("s", verifier, redirectURI))
		before := time.Now()
		tok, err := o.Exchange(ctx, code, verifier, redirectURI)
		require.NoError(t, err)
		require.Equal(t, accessToken, tok.AccessToken)
		require.Equal(t, refreshTok, tok.RefreshToken)
		require.Equal(t, []string{googlehealth.ScopePrefix + "activity_and_fitness.readonly", googlehealth.ScopePrefix + "sleep.readonly"}, tok.Scopes)
		require.WithinRange(t, tok.Expiry, before.Add(3599*time.Second), time.Now().Add(3599*time.Second))
		form := f.forms[0]
		require.Equal(t, "authorization_code", form.Get("grant_type"))
		require.Equal(t, verifier, form.Get("code_verifier"))

		// A code is single use; a wrong verifier is refused.
		_, err = o.Exchange(ctx, code, verifier, redirectURI)
		require.ErrorIs(t, err, googlehealth.ErrInvalidGrant)
		code = f.consent(t, o.AuthCodeURL("s", verifier, redirectURI))
		_, err = o.Exchange(ctx, code, googlehealth.NewCodeVerifier(), redirectURI)
		require.ErrorIs(t, err, googlehealth.ErrInvalidGrant)
	})

	t.Run("ExchangeWithoutRefreshTokenIsRefused", func(t *testing.T) {
		t.Parallel()
		f, cfg, srv := newFakeOAuth(t)
		f.answer = func(w http.ResponseWriter, _ url.Values) {
			oauthJSON(w, http.StatusOK, map[string]any{"access_token": accessToken, "expires_in": 3599, "token_type": "Bearer"})
		}
		_, err := googlehealth.NewOAuth(cfg, srv.Client()).Exchange(ctx, "4/0code", "v", redirectURI)
		var oe *googlehealth.OAuthError
		require.ErrorAs(t, err, &oe)
		require.Equal(t, "no_refresh_token", oe.Code)
	})

	t.Run("RefreshKeepsTheRefreshTokenUnlessGoogleRotatesIt", func(t *testing.T) {
		t.Parallel()
		f, cfg, srv := newFakeOAuth(t)
		o := googlehealth.NewOAuth(cfg, srv.Client())
		tok, err := o.Refresh(ctx, refreshTok)
		require.NoError(t, err)
		require.Equal(t, accessToken, tok.AccessToken)
		require.Empty(t, tok.RefreshToken, "not rotated: nothing new to store")
		require.Equal(t, "refresh_token", f.forms[0].Get("grant_type"))
		require.Equal(t, clientSecret, f.forms[0].Get("client_secret"), "credentials in the body")

		f.rotate = "1//0rotated"
		tok, err = o.Refresh(ctx, refreshTok)
		require.NoError(t, err)
		require.Equal(t, "1//0rotated", tok.RefreshToken)
	})

	t.Run("DeadRefreshTokenIsInvalidGrantAfterOneRequest", func(t *testing.T) {
		t.Parallel()
		f, cfg, srv := newFakeOAuth(t)
		f.dead = true
		_, err := googlehealth.NewOAuth(cfg, srv.Client()).Refresh(ctx, refreshTok)
		require.ErrorIs(t, err, googlehealth.ErrInvalidGrant)
		require.Equal(t, googlehealth.ClassUnauthorized, googlehealth.ClassOf(err))
		require.Equal(t, 1, f.requests(), "a refused refresh is not sent again")
		require.NotContains(t, err.Error(), refreshTok, "the body echoed the token")
	})

	t.Run("RefreshFailuresByClass", func(t *testing.T) {
		t.Parallel()
		for name, tc := range map[string]struct {
			status int
			body   string
			class  googlehealth.Class
			code   string
		}{
			"InvalidClient":    {401, `{"error":"invalid_client","error_description":"Unauthorized"}`, googlehealth.ClassPermanent, "invalid_client"},
			"RAPTRequired":     {400, `{"error":"invalid_grant","error_subtype":"invalid_rapt"}`, googlehealth.ClassUnauthorized, "invalid_grant"},
			"RateLimited":      {429, `{"error":"rate_limit_exceeded"}`, googlehealth.ClassThrottled, "rate_limit_exceeded"},
			"ServerError":      {500, `{"error":"internal_failure"}`, googlehealth.ClassRetryable, "internal_failure"},
			"Unavailable":      {503, `<html>Service Unavailable</html>`, googlehealth.ClassRetryable, "unknown"},
			"FormEncodedError": {400, `error=unauthorized_client`, googlehealth.ClassPermanent, "unauthorized_client"},
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				f, cfg, srv := newFakeOAuth(t)
				f.answer = func(w http.ResponseWriter, _ url.Values) {
					if strings.HasPrefix(tc.body, "{") {
						w.Header().Set("Content-Type", "application/json")
					} else if strings.HasPrefix(tc.body, "error=") {
						w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
					}
					w.WriteHeader(tc.status)
					_, _ = io.WriteString(w, tc.body)
				}
				_, err := googlehealth.NewOAuth(cfg, srv.Client()).Refresh(ctx, refreshTok)
				var oe *googlehealth.OAuthError
				require.ErrorAs(t, err, &oe)
				require.Equal(t, tc.status, oe.HTTPStatus)
				require.Equal(t, tc.code, oe.Code)
				require.Equal(t, "refresh", oe.Op)
				require.Equal(t, tc.class, googlehealth.ClassOf(err))
				require.Equal(t, 1, f.requests())
			})
		}
	})

	t.Run("NetworkFailureIsRetryable", func(t *testing.T) {
		t.Parallel()
		_, cfg, srv := newFakeOAuth(t)
		srv.Close()
		_, err := googlehealth.NewOAuth(cfg, nil).Refresh(ctx, refreshTok)
		require.Error(t, err)
		require.Equal(t, googlehealth.ClassRetryable, googlehealth.ClassOf(err))
		require.NotContains(t, err.Error(), refreshTok)
	})

	t.Run("Revoke", func(t *testing.T) {
		t.Parallel()
		f, cfg, srv := newFakeOAuth(t)
		o := googlehealth.NewOAuth(cfg, srv.Client())
		require.NoError(t, o.Revoke(ctx, refreshTok))
		require.Equal(t, refreshTok, f.forms[0].Get("token"))
		require.NoError(t, o.Revoke(ctx, "1//0already-revoked"), "a token Google no longer knows counts as revoked")

		f.answer = nil
		down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			oauthJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "backend_error"})
		}))
		t.Cleanup(down.Close)
		cfg.RevokeURL = down.URL
		err := googlehealth.NewOAuth(cfg, down.Client()).Revoke(ctx, refreshTok)
		var oe *googlehealth.OAuthError
		require.ErrorAs(t, err, &oe)
		require.Equal(t, googlehealth.ClassRetryable, googlehealth.ClassOf(err))
		require.NotContains(t, err.Error(), refreshTok)
	})
}

func TestConfig(t *testing.T) {
	t.Parallel()

	t.Run("SecretsNeverPrint", func(t *testing.T) {
		t.Parallel()
		cfg := googlehealth.Config{ClientID: clientID, ClientSecret: clientSecret, WebhookSecret: "Bearer s3cr3t-hook"}
		b, err := json.Marshal(cfg)
		require.NoError(t, err)
		var logged bytes.Buffer
		slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "secret", cfg.ClientSecret, "hook", cfg.WebhookSecret)
		for _, out := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), string(b), logged.String()} {
			require.NotContains(t, out, clientSecret)
			require.NotContains(t, out, "s3cr3t")
		}
		require.Equal(t, "", googlehealth.Secret("").String())
	})

	t.Run("Validate", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, googlehealth.Config{}.Validate(), "defaults")
		require.NoError(t, googlehealth.Config{ClientID: clientID, ClientSecret: clientSecret}.Validate())
		require.ErrorContains(t, googlehealth.Config{ClientID: clientID}.Validate(), "GOOGLE_HEALTH_CLIENT_SECRET")
		require.ErrorContains(t, googlehealth.Config{APIBaseURL: "health.googleapis.com"}.Validate(), "GOOGLE_HEALTH_API_BASE_URL")
		require.ErrorContains(t, googlehealth.Config{TokenURL: "ftp://x/token"}.Validate(), "GOOGLE_OAUTH_TOKEN_URL")
		require.True(t, googlehealth.Config{ClientID: clientID, ClientSecret: clientSecret}.Configured())
		require.False(t, googlehealth.Config{ClientID: clientID}.Configured())
	})

	t.Run("WebhookSecretsRotate", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, []string{"Bearer a", "Bearer b"}, googlehealth.Config{WebhookSecret: " Bearer a |Bearer b| "}.WebhookSecrets())
		require.Empty(t, googlehealth.Config{}.WebhookSecrets())
	})
}

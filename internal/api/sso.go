package api

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// SSOConfig is OpenID Connect login for River UI and /status (OIDC_*
// variables). With IssuerURL unset there is no SSO; Basic auth stays
// either way when OPERATOR_USERNAME is set.
type SSOConfig struct {
	// IssuerURL is the OpenID provider (discovery at
	// IssuerURL/.well-known/openid-configuration).
	IssuerURL    string `env:"OIDC_ISSUER_URL"`
	ClientID     string `env:"OIDC_CLIENT_ID"`
	ClientSecret Secret `env:"OIDC_CLIENT_SECRET"`
	// AllowedEmails and AllowedGroups (comma-separated): a login is let in
	// when its verified email is listed or one of its groups (the
	// GroupsClaim claim) is. At least one of them must be set.
	AllowedEmails []string `env:"OIDC_ALLOWED_EMAILS"`
	AllowedGroups []string `env:"OIDC_ALLOWED_GROUPS"`
	GroupsClaim   string   `env:"OIDC_GROUPS_CLAIM, default=groups"`
	// SessionKey signs session cookies (base64, at least 32 bytes; every
	// api replica needs the same). Unset: a random key per process, so a
	// restart logs everyone out.
	SessionKey Secret `env:"OIDC_SESSION_KEY"`
	// SessionTTL is how long a login lasts.
	SessionTTL time.Duration `env:"OIDC_SESSION_TTL, default=8h"`
}

// SSO routes.
const (
	routeSSOLogin    = "/auth/login"
	routeSSOCallback = "/auth/callback"
	routeSSOLogout   = "/auth/logout"
)

const (
	ssoFlowCookie    = "switchboard_sso_flow"
	ssoSessionCookie = "switchboard_session"
	ssoFlowTTL       = 10 * time.Minute
)

// sso is the OpenID Connect login: a flow cookie binds the provider's
// answer to the browser that asked (state, nonce, PKCE verifier), and a
// signed session cookie holds the verified email until it expires.
type sso struct {
	cfg         SSOConfig
	key         []byte
	redirectURL string
	secure      bool
	logger      *slog.Logger

	mu       sync.Mutex
	provider *oidc.Provider // discovered on first use, so the api starts while the provider is down
}

func newSSO(cfg SSOConfig, baseURL string, logger *slog.Logger) (*sso, error) {
	if cfg.IssuerURL == "" {
		return nil, nil
	}
	if cfg.ClientID == "" {
		return nil, errors.New("OIDC_CLIENT_ID must be set with OIDC_ISSUER_URL")
	}
	if len(cfg.AllowedEmails) == 0 && len(cfg.AllowedGroups) == 0 {
		return nil, errors.New("OIDC_ALLOWED_EMAILS or OIDC_ALLOWED_GROUPS must be set with OIDC_ISSUER_URL")
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	var key []byte
	if cfg.SessionKey != "" {
		k, err := base64.StdEncoding.DecodeString(string(cfg.SessionKey))
		if err != nil || len(k) < 32 {
			return nil, errors.New("OIDC_SESSION_KEY must be base64 of at least 32 bytes")
		}
		key = k
	} else {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
		logger.Warn("OIDC_SESSION_KEY not set: sessions last until this process restarts and hold on this replica only")
	}
	return &sso{
		cfg: cfg, key: key, redirectURL: baseURL + routeSSOCallback,
		secure: strings.HasPrefix(baseURL, "https://"), logger: logger,
	}, nil
}

func (s *sso) discover(ctx context.Context) (*oidc.Provider, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.provider != nil {
		return s.provider, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(ctx, s.cfg.IssuerURL)
	if err != nil {
		return nil, err
	}
	s.provider = p
	return p, nil
}

func (s *sso) oauth(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{
		ClientID: s.cfg.ClientID, ClientSecret: string(s.cfg.ClientSecret),
		Endpoint: p.Endpoint(), RedirectURL: s.redirectURL,
		Scopes: []string{oidc.ScopeOpenID, "email", "profile", "groups"},
	}
}

// sign and open seal a small JSON value into a cookie: base64url(value).base64url(HMAC).
func (s *sso) sign(purpose string, v any) string {
	b, _ := json.Marshal(v)
	payload := base64.RawURLEncoding.EncodeToString(b)
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(purpose + "|" + payload))
	return payload + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (s *sso) open(purpose, raw string, v any) bool {
	payload, sig, ok := strings.Cut(raw, ".")
	if !ok {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(purpose + "|" + payload))
	if !hmac.Equal(got, mac.Sum(nil)) {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	return err == nil && json.Unmarshal(b, v) == nil
}

type ssoFlow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Next     string `json:"x"`
	Expires  int64  `json:"e"`
}

type ssoSession struct {
	Email   string `json:"m"`
	Expires int64  `json:"e"`
}

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// safeNext keeps a redirect target on this site: a path, not a URL.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return riverUIPrefix + "/"
	}
	return next
}

func (s *sso) setCookie(w http.ResponseWriter, name, value, path string, ttl time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: path, MaxAge: int(ttl.Seconds()),
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
}

// authenticated reports whether r carries a valid, unexpired session.
func (s *sso) authenticated(r *http.Request) bool {
	c, err := r.Cookie(ssoSessionCookie)
	if err != nil {
		return false
	}
	var sess ssoSession
	return s.open("session", c.Value, &sess) && sess.Email != "" && time.Now().Unix() < sess.Expires
}

// challenge sends a browser to the login and anything else a 401.
func (s *sso) challenge(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && wantsHTML(r) {
		http.Redirect(w, r, routeSSOLogin+"?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
		return
	}
	http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
}

func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

func (s *sso) handleLogin(w http.ResponseWriter, r *http.Request) {
	p, err := s.discover(r.Context())
	if err != nil {
		s.logger.WarnContext(r.Context(), "sso provider discovery failed", slog.String("error", err.Error()))
		http.Error(w, "sign-in provider unavailable", http.StatusServiceUnavailable)
		return
	}
	flow := ssoFlow{State: randomString(), Nonce: randomString(), Verifier: oauth2.GenerateVerifier(),
		Next: safeNext(r.URL.Query().Get("next")), Expires: time.Now().Add(ssoFlowTTL).Unix()}
	s.setCookie(w, ssoFlowCookie, s.sign("flow", flow), "/auth/", ssoFlowTTL)
	http.Redirect(w, r, s.oauth(p).AuthCodeURL(flow.State, oidc.Nonce(flow.Nonce), oauth2.S256ChallengeOption(flow.Verifier)), http.StatusFound)
}

func (s *sso) handleCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	deny := func(reason string) {
		ssoLogins.WithLabelValues(reason).Inc()
		http.Error(w, "sign-in refused", http.StatusForbidden)
	}
	c, err := r.Cookie(ssoFlowCookie)
	var flow ssoFlow
	if err != nil || !s.open("flow", c.Value, &flow) || time.Now().Unix() >= flow.Expires {
		deny("no_flow")
		return
	}
	// The flow is single use: clear it whatever happens next.
	s.setCookie(w, ssoFlowCookie, "", "/auth/", -time.Second)
	if subtle.ConstantTimeCompare([]byte(r.URL.Query().Get("state")), []byte(flow.State)) != 1 {
		deny("bad_state")
		return
	}
	p, err := s.discover(ctx)
	if err != nil {
		http.Error(w, "sign-in provider unavailable", http.StatusServiceUnavailable)
		return
	}
	tok, err := s.oauth(p).Exchange(ctx, r.URL.Query().Get("code"), oauth2.VerifierOption(flow.Verifier))
	if err != nil {
		deny("exchange_failed")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := p.Verifier(&oidc.Config{ClientID: s.cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		deny("bad_id_token")
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(flow.Nonce)) != 1 {
		deny("bad_nonce")
		return
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		deny("bad_id_token")
		return
	}
	email, _ := claims["email"].(string)
	if verified, ok := claims["email_verified"].(bool); ok && !verified {
		email = ""
	}
	if !s.allowed(email, claims[s.cfg.GroupsClaim]) {
		s.logger.WarnContext(ctx, "sso login not allowed", slog.String("subject", idt.Subject))
		deny("not_allowed")
		return
	}
	ssoLogins.WithLabelValues(loginOK).Inc()
	s.setCookie(w, ssoSessionCookie, s.sign("session", ssoSession{Email: email, Expires: time.Now().Add(s.cfg.SessionTTL).Unix()}), "/", s.cfg.SessionTTL)
	http.Redirect(w, r, safeNext(flow.Next), http.StatusFound)
}

// allowed: a verified email on the list, or a group on the list.
func (s *sso) allowed(email string, groups any) bool {
	if email != "" && slices.ContainsFunc(s.cfg.AllowedEmails, func(a string) bool { return strings.EqualFold(strings.TrimSpace(a), email) }) {
		return true
	}
	var list []string
	switch g := groups.(type) {
	case []any:
		for _, v := range g {
			if s, ok := v.(string); ok {
				list = append(list, s)
			}
		}
	case string:
		list = []string{g}
	}
	for _, g := range list {
		if slices.ContainsFunc(s.cfg.AllowedGroups, func(a string) bool { return strings.TrimSpace(a) == g }) {
			return true
		}
	}
	return false
}

func (s *sso) handleLogout(w http.ResponseWriter, r *http.Request) {
	s.setCookie(w, ssoSessionCookie, "", "/", -time.Second)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *sso) String() string { return fmt.Sprintf("sso(%s)", s.cfg.IssuerURL) }

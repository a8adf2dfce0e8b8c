package googlehealth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Token is what the token endpoint granted.
type Token struct {
	AccessToken  string
	RefreshToken string // empty on a refresh: Google's refresh tokens do not rotate
	Expiry       time.Time
	Scopes       []string
}

// OAuth talks to Google's OAuth 2.0 endpoints. It is safe for concurrent use.
type OAuth struct {
	cfg  Config
	http *http.Client
}

// NewOAuth returns an OAuth client using httpClient (nil: a client with a
// 30 s timeout).
func NewOAuth(cfg Config, httpClient *http.Client) *OAuth {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	return &OAuth{cfg: cfg.withDefaults(), http: httpClient}
}

func (o *OAuth) conf(redirectURI string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     o.cfg.ClientID,
		ClientSecret: string(o.cfg.ClientSecret),
		// In params: auto-detection would send a failed refresh twice.
		Endpoint:    oauth2.Endpoint{AuthURL: o.cfg.AuthURL, TokenURL: o.cfg.TokenURL, AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: redirectURI,
		Scopes:      o.cfg.Scopes,
	}
}

// NewCodeVerifier returns a fresh PKCE code verifier (RFC 7636, 32 random bytes).
func NewCodeVerifier() string { return oauth2.GenerateVerifier() }

// AuthCodeURL is the consent URL: authorization code with PKCE S256 over
// verifier, offline access (a refresh token) and prompt=consent (so a
// re-consent grants a new refresh token).
func (o *OAuth) AuthCodeURL(state, verifier, redirectURI string) string {
	return o.conf(redirectURI).AuthCodeURL(state,
		oauth2.AccessTypeOffline,
		oauth2.SetAuthURLParam("prompt", "consent"),
		oauth2.SetAuthURLParam("include_granted_scopes", "true"),
		oauth2.S256ChallengeOption(verifier))
}

// Exchange trades an authorization code for tokens, proving the PKCE
// verifier. It returns an *OAuthError when Google refuses (a reused or
// expired code is invalid_grant), or a transport error.
func (o *OAuth) Exchange(ctx context.Context, code, verifier, redirectURI string) (*Token, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, o.http)
	tok, err := o.conf(redirectURI).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, oauthError("exchange", err)
	}
	if tok.RefreshToken == "" {
		return nil, &OAuthError{HTTPStatus: http.StatusOK, Code: "no_refresh_token", Op: "exchange"}
	}
	return token(tok), nil
}

// Refresh gets a new access token with refreshToken. A dead refresh token
// is an *OAuthError matching ErrInvalidGrant.
func (o *OAuth) Refresh(ctx context.Context, refreshToken string) (*Token, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, o.http)
	tok, err := o.conf("").TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		return nil, oauthError("refresh", err)
	}
	t := token(tok)
	if t.RefreshToken == refreshToken {
		t.RefreshToken = ""
	}
	return t, nil
}

// Revoke revokes a token (a refresh token revokes the whole grant). A token
// Google no longer knows (400 invalid_token) counts as revoked.
func (o *OAuth) Revoke(ctx context.Context, tok string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.cfg.RevokeURL,
		strings.NewReader(url.Values{"token": {tok}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := o.http.Do(req)
	if err != nil {
		return fmt.Errorf("error revoking google token: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	code := oauthCode(body)
	if resp.StatusCode == http.StatusBadRequest && (code == "invalid_token" || code == "invalid_grant") {
		return nil
	}
	return &OAuthError{HTTPStatus: resp.StatusCode, Code: code, Op: "revoke"}
}

func token(t *oauth2.Token) *Token {
	out := &Token{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, Expiry: t.Expiry}
	if s, ok := t.Extra("scope").(string); ok && s != "" {
		out.Scopes = strings.Fields(s)
	}
	return out
}

func oauthError(op string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		code := re.ErrorCode
		if code == "" {
			code = oauthCode(re.Body)
		}
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return &OAuthError{HTTPStatus: status, Code: code, Op: op}
	}
	return fmt.Errorf("error calling google oauth %s: %w", op, err)
}

// oauthCode reads the "error" field of a JSON or form error body.
func oauthCode(body []byte) string {
	s := strings.TrimSpace(string(body))
	if strings.HasPrefix(s, "{") {
		var v struct {
			Error any `json:"error"`
		}
		if jsonUnmarshal(body, &v) == nil {
			if c, ok := v.Error.(string); ok {
				return c
			}
		}
		return "unknown"
	}
	if q, err := url.ParseQuery(s); err == nil && q.Get("error") != "" {
		return q.Get("error")
	}
	return "unknown"
}

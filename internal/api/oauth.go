package api

import (
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strings"

	"github.com/switchboard-health/switchboard/internal/wearables"
)

// Wearable connect routes.
const (
	routeGoogleHealthStart    = "/oauth/google-health/start"
	routeGoogleHealthCallback = "/oauth/google-health/callback"
)

// resultPage is what the patient's browser shows at the end of the flow.
// It names no patient and no account.
var resultPage = template.Must(template.New("r").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>{{.Title}}</title></head>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto"><h1>{{.Title}}</h1><p>{{.Text}}</p></body></html>`))

func page(w http.ResponseWriter, status int, title, text string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_ = resultPage.Execute(w, struct{ Title, Text string }{title, text})
}

// startPage is the page a connect link opens: GET shows it and spends
// nothing (messaging apps fetch links for previews); its button POSTs the
// link, which spends it. It names no patient and no account.
var startPage = template.Must(template.New("s").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>Connect your Fitbit</title></head>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto"><h1>Connect your Fitbit</h1>
<p>Share your Fitbit data with your care team through your Google account.</p>
<form method="post" action="{{.Action}}"><input type="hidden" name="link" value="{{.Link}}">
<button type="submit" style="font-size:1.2em;padding:.5em 1em">Continue to Google</button></form></body></html>`))

func (s *Server) linkRefused(w http.ResponseWriter, err error) bool {
	switch {
	case errors.Is(err, wearables.ErrLinkUsed):
		page(w, http.StatusGone, "Link already used", "This link was already used. Ask for a new one in the app.")
	case errors.Is(err, wearables.ErrLinkInvalid):
		page(w, http.StatusForbidden, "Link expired", "This link is no longer valid. Ask for a new one in the app.")
	case errors.Is(err, wearables.ErrNotConfigured):
		http.Error(w, "google health not configured", http.StatusServiceUnavailable)
	default:
		return false
	}
	return true
}

// handleGoogleHealthStartPage shows the connect page for a link without
// spending it: 200 with a button, 410 for a used link, 403 for an unknown
// or expired one.
func (s *Server) handleGoogleHealthStartPage(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Wearables == nil {
		http.Error(w, "wearables not configured", http.StatusServiceUnavailable)
		return
	}
	link := r.URL.Query().Get("link")
	err := s.cfg.Wearables.CheckLink(r.Context(), link)
	if s.linkRefused(w, err) {
		return
	}
	if err != nil {
		s.logger.ErrorContext(r.Context(), "error checking connect link", slog.Any("error", err))
		page(w, http.StatusInternalServerError, "Something went wrong", "Please try again in a few minutes.")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	_ = startPage.Execute(w, struct{ Action, Link string }{routeGoogleHealthStart, link})
}

// handleGoogleHealthStart spends a connect link (single use: a second POST
// gets 410) and redirects to Google's consent screen, setting the browser
// cookie (HttpOnly, SameSite=Lax so Google's redirect back carries it,
// Secure and __Host- on https) that the callback requires. A bare patient
// id is never enough: only a link issued by switchboard.wearables_connect_link.
func (s *Server) handleGoogleHealthStart(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Wearables == nil {
		http.Error(w, "wearables not configured", http.StatusServiceUnavailable)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	u, cookie, err := s.cfg.Wearables.StartURL(r.Context(), r.PostFormValue("link"))
	if s.linkRefused(w, err) {
		return
	}
	if err != nil {
		s.logger.ErrorContext(r.Context(), "error starting google health consent", slog.Any("error", err))
		page(w, http.StatusInternalServerError, "Something went wrong", "Please try again in a few minutes.")
		return
	}
	s.setBrowserCookie(w, cookie, 3600)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// setBrowserCookie sets (maxAge > 0) or clears (maxAge < 0) the cookie
// binding a consent to its browser: HttpOnly, SameSite=Lax so Google's
// redirect back carries it, Secure for a __Host- name.
func (s *Server) setBrowserCookie(w http.ResponseWriter, value string, maxAge int) {
	name := s.cfg.Wearables.BrowserCookieName()
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: strings.HasPrefix(name, "__Host-"), MaxAge: maxAge,
	})
}

// handleGoogleHealthCallback completes the consent.
func (s *Server) handleGoogleHealthCallback(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Wearables == nil {
		http.Error(w, "wearables not configured", http.StatusServiceUnavailable)
		return
	}
	q := r.URL.Query()
	var browser string
	if c, err := r.Cookie(s.cfg.Wearables.BrowserCookieName()); err == nil {
		browser = c.Value
	}
	id, err := s.cfg.Wearables.Callback(r.Context(), s.client, q.Get("state"), q.Get("code"), q.Get("error"), browser)
	if !errors.Is(err, wearables.ErrBrowser) {
		// The cookie served its one purpose.
		s.setBrowserCookie(w, "", -1)
	}
	log := s.logger.With(slog.String("vendor", "google_health"))
	switch {
	case err == nil:
		log.InfoContext(r.Context(), "device connected", slog.Int64("connection_id", id))
		page(w, http.StatusOK, "Connected", "Your Fitbit data will now be shared with your care team. You can close this page.")
	case errors.Is(err, wearables.ErrStateMissing), errors.Is(err, wearables.ErrStateUnknown),
		errors.Is(err, wearables.ErrStateExpired), errors.Is(err, wearables.ErrStateReused), errors.Is(err, wearables.ErrCodeMissing):
		log.WarnContext(r.Context(), "google health callback refused", slog.String("error", err.Error()))
		page(w, http.StatusBadRequest, "Link expired", "This connection attempt is no longer valid. Start again from the app.")
	case errors.Is(err, wearables.ErrBrowser):
		log.WarnContext(r.Context(), "google health callback from another browser refused")
		page(w, http.StatusForbidden, "Start again on this device", "This connection was started in another browser. Open the link from the app on this device.")
	case errors.Is(err, wearables.ErrAccountSwap):
		log.WarnContext(r.Context(), "google health consent with a different account refused")
		page(w, http.StatusConflict, "Not connected", "A different Google account is already connected for you, so nothing was changed. Contact your care team if you want to switch accounts.")
	case errors.Is(err, wearables.ErrConsentDenied):
		page(w, http.StatusOK, "Not connected", "You did not allow access. You can connect later from the app.")
	case errors.Is(err, wearables.ErrAccountInUse):
		page(w, http.StatusConflict, "Account already connected", "This Google account is already connected for someone else.")
	case errors.Is(err, wearables.ErrExchange), errors.Is(err, wearables.ErrIdentity):
		log.WarnContext(r.Context(), "google health consent failed", slog.String("error", err.Error()))
		page(w, http.StatusBadGateway, "Could not connect", "Google did not complete the connection. Please start again from the app.")
	default:
		log.ErrorContext(r.Context(), "error completing google health consent", slog.Any("error", err))
		page(w, http.StatusInternalServerError, "Something went wrong", "Please start again from the app.")
	}
}

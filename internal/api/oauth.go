package api

import (
	"errors"
	"html/template"
	"log/slog"
	"net/http"

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

// handleGoogleHealthStart turns a connect link into a redirect to Google's
// consent screen. A bare patient id is never enough: only a link issued by
// switchboard.wearables_connect_link (or `switchboard wearables link`).
func (s *Server) handleGoogleHealthStart(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Wearables == nil {
		http.Error(w, "wearables not configured", http.StatusServiceUnavailable)
		return
	}
	u, err := s.cfg.Wearables.StartURL(r.Context(), r.URL.Query().Get("link"))
	switch {
	case errors.Is(err, wearables.ErrLinkInvalid):
		page(w, http.StatusForbidden, "Link expired", "This link is no longer valid. Ask for a new one in the app.")
		return
	case errors.Is(err, wearables.ErrNotConfigured):
		http.Error(w, "google health not configured", http.StatusServiceUnavailable)
		return
	case err != nil:
		s.logger.ErrorContext(r.Context(), "error starting google health consent", slog.Any("error", err))
		page(w, http.StatusInternalServerError, "Something went wrong", "Please try again in a few minutes.")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u, http.StatusFound)
}

// handleGoogleHealthCallback completes the consent.
func (s *Server) handleGoogleHealthCallback(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Wearables == nil {
		http.Error(w, "wearables not configured", http.StatusServiceUnavailable)
		return
	}
	q := r.URL.Query()
	id, err := s.cfg.Wearables.Callback(r.Context(), s.client, q.Get("state"), q.Get("code"), q.Get("error"))
	log := s.logger.With(slog.String("vendor", "google_health"))
	switch {
	case err == nil:
		log.InfoContext(r.Context(), "device connected", slog.Int64("connection_id", id))
		page(w, http.StatusOK, "Connected", "Your Fitbit data will now be shared with your care team. You can close this page.")
	case errors.Is(err, wearables.ErrStateMissing), errors.Is(err, wearables.ErrStateUnknown),
		errors.Is(err, wearables.ErrStateExpired), errors.Is(err, wearables.ErrStateReused), errors.Is(err, wearables.ErrCodeMissing):
		log.WarnContext(r.Context(), "google health callback refused", slog.String("error", err.Error()))
		page(w, http.StatusBadRequest, "Link expired", "This connection attempt is no longer valid. Start again from the app.")
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

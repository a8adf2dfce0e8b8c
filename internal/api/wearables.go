package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/switchboard-health/switchboard/internal/applehealth"
	"github.com/switchboard-health/switchboard/internal/googlehealth"
	"github.com/switchboard-health/switchboard/internal/wearables"
)

// Wearable routes.
const (
	providerGoogleHealth    = "google_health"
	routeGoogleHealthHook   = "/webhooks/google-health"
	routeAppleHealthSamples = "/v1/apple-health/samples"
)

// Wearables is what the wearable routes call; *wearables.API implements it.
// Config.Wearables nil: these routes answer 503.
type Wearables interface {
	CheckLink(ctx context.Context, link string) error
	StartURL(ctx context.Context, link string) (authURL, browserCookie string, err error)
	BrowserCookieName() string
	Callback(ctx context.Context, ins wearables.Inserter, state, code, oauthError, browserCookie string) (int64, error)
	Verifier() *googlehealth.Verifier
	StoreNotification(ctx context.Context, ins wearables.Inserter, body []byte) (bool, error)
	AuthenticateUpload(ctx context.Context, token string) (wearables.Uploader, error)
	StoreUpload(ctx context.Context, ins wearables.Inserter, u wearables.Uploader, body []byte) (wearables.UploadResult, error)
	UploadMaxBytes() int64
}

// handleGoogleHealthWebhook answers the subscriber handshake (201 with the
// right Authorization, 401 without) and stores verified notifications with
// their job, answering 204 at once: any other answer is redelivered.
func (s *Server) handleGoogleHealthWebhook() http.Handler {
	for _, res := range allResults {
		webhooksTotal.WithLabelValues(providerGoogleHealth, routeGoogleHealthHook, res)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		count := func(res string) {
			webhooksTotal.WithLabelValues(providerGoogleHealth, routeGoogleHealthHook, res).Inc()
		}
		log := s.logger.With(slog.String("vendor", providerGoogleHealth), slog.String("route", routeGoogleHealthHook))
		if s.cfg.Wearables == nil || !s.cfg.Wearables.Verifier().Configured() {
			count(resultError)
			http.Error(w, "google health webhooks not configured", http.StatusServiceUnavailable)
			return
		}
		v := s.cfg.Wearables.Verifier()
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.WebhookMaxBodyBytes))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				count(resultTooLarge)
				http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
				return
			}
			count(resultMalformed)
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		if googlehealth.IsVerification(body) {
			if err := v.CheckAuthorization(r.Header.Get("Authorization"), true); err != nil {
				log.WarnContext(ctx, "google health verification refused", slog.String("error", err.Error()))
				count(resultBadSignature)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			count(resultAccepted)
			w.WriteHeader(http.StatusCreated)
			return
		}
		if err := v.CheckAuthorization(r.Header.Get("Authorization"), false); err != nil {
			log.WarnContext(ctx, "google health notification refused", slog.String("error", err.Error()))
			count(resultBadSignature)
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		if err := v.VerifySignature(body, googlehealth.Signature(r.Header.Get)); err != nil {
			log.WarnContext(ctx, "google health notification refused", slog.String("error", err.Error()))
			count(resultBadSignature)
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		if _, err := googlehealth.ParseNotifications(body); err != nil {
			log.WarnContext(ctx, "google health notification malformed", slog.String("error", err.Error()))
			count(resultMalformed)
			http.Error(w, "malformed notification", http.StatusBadRequest)
			return
		}
		sctx, cancel := context.WithTimeout(ctx, webhookStoreTimeout)
		defer cancel()
		stored, err := s.cfg.Wearables.StoreNotification(sctx, s.client, body)
		if err != nil {
			log.ErrorContext(ctx, "error storing google health notification", slog.Any("error", err))
			count(resultError)
			http.Error(w, "error", http.StatusInternalServerError)
			return
		}
		if stored {
			count(resultAccepted)
		} else {
			count(resultDuplicate)
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// UploadAuthConfig throttles failed Apple Health uploads per source
// (APPLE_HEALTH_AUTH_* variables). Zero fields take the defaults.
type UploadAuthConfig struct {
	// FailuresPerIP uploads with a wrong token from one source address (an
	// IPv6 /64) make it wait: it gets one more try every Refill, answered
	// 429 before any database work meanwhile.
	FailuresPerIP int           `env:"APPLE_HEALTH_AUTH_FAILURES_PER_IP, default=20"`
	Refill        time.Duration `env:"APPLE_HEALTH_AUTH_REFILL, default=1m"`
	// Tracked bounds how many sources are remembered (least recently
	// failed forgotten first), so the throttle's memory is bounded.
	Tracked int `env:"APPLE_HEALTH_AUTH_TRACKED, default=10000"`
}

// throttle is the per-source throttle of failed upload authentications.
func (c UploadAuthConfig) throttle() *failureThrottle {
	return newSourceThrottle(c.FailuresPerIP, c.Refill, c.Tracked)
}

var uploadAuthFailures = promauto.NewCounterVec(prometheus.CounterOpts{
	Namespace: "switchboard",
	Name:      "wearables_upload_auth_failures_total",
	Help:      "Apple Health uploads refused for their token, by reason (invalid_token: checked and wrong; throttled: refused before any database work).",
}, []string{"reason"})

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// handleAppleHealthSamples stores a HealthKit upload: 401 for a wrong
// token, 413 over the limit, 400 (with every problem and unknown type) for
// a batch that is not entirely valid, 202 with the processing job otherwise.
func (s *Server) handleAppleHealthSamples(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if s.cfg.Wearables == nil {
		http.Error(w, "wearables not configured", http.StatusServiceUnavailable)
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing bearer token"})
		return
	}
	src, now := s.cfg.TrustedProxies.sourceKey(r), time.Now()
	if wait, blocked := s.uploads.blocked(src, now); blocked {
		// Refused before any database work: a source guessing tokens costs
		// nothing but this map lookup.
		uploadAuthFailures.WithLabelValues("throttled").Inc()
		setRetryAfter(w, wait)
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "too many failed uploads from this address, try again later"})
		return
	}
	u, err := s.cfg.Wearables.AuthenticateUpload(ctx, strings.TrimSpace(tok))
	if errors.Is(err, wearables.ErrUploadToken) {
		s.uploads.failed(src, now)
		uploadAuthFailures.WithLabelValues("invalid_token").Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid upload token"})
		return
	}
	if err != nil {
		s.logger.ErrorContext(ctx, "error authenticating upload", slog.Any("error", err))
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.Wearables.UploadMaxBytes()))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"error": "upload too large", "limit_bytes": tooLarge.Limit})
			return
		}
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "cannot read body"})
		return
	}
	res, err := s.cfg.Wearables.StoreUpload(ctx, s.client, u, body)
	var ae *applehealth.Error
	switch {
	case errors.As(err, &ae):
		writeJSON(w, http.StatusBadRequest, ae)
	case err != nil:
		s.logger.ErrorContext(ctx, "error storing apple health upload", slog.Int64("connection_id", u.ConnectionID), slog.Any("error", err))
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
	default:
		writeJSON(w, http.StatusAccepted, res)
	}
}

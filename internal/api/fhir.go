package api

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/switchboard-health/switchboard/internal/fhir"
)

// Routes of FHIR R4 rest-hook notifications (both forms servers use).
const (
	routeFHIRNotify    = "/webhooks/fhir/{endpoint_name}"
	routeFHIRNotifyPut = "/webhooks/fhir/{endpoint_name}/{type}/{id}"
)

// FHIRSecretHeader carries the endpoint's shared secret (set it as the
// Subscription's channel.header "X-Switchboard-Secret: <secret>");
// "Authorization: Bearer <secret>" is accepted too.
const FHIRSecretHeader = "X-Switchboard-Secret"

var reFHIRType = regexp.MustCompile(`^[A-Z][A-Za-z]{1,63}$`)

// FHIRAuthConfig throttles FHIR notifications with a wrong secret per
// source (FHIR_NOTIFY_AUTH_* variables). Zero fields take the defaults.
type FHIRAuthConfig struct {
	// FailuresPerIP notifications with a wrong secret or endpoint from one
	// source address (an IPv6 /64) make it wait: one more try every
	// Refill, answered 429 before any database work meanwhile.
	FailuresPerIP int           `env:"FHIR_NOTIFY_AUTH_FAILURES_PER_IP, default=20"`
	Refill        time.Duration `env:"FHIR_NOTIFY_AUTH_REFILL, default=1m"`
}

// throttle is the per-source throttle of failed notification secrets, its
// memory bounded to the default number of sources.
func (c FHIRAuthConfig) throttle() *failureThrottle {
	return newSourceThrottle(c.FailuresPerIP, c.Refill, 0)
}

// handleFHIRNotify takes a rest-hook notification: it checks the shared
// secret (403, nothing stored, when wrong or the endpoint is unknown; a
// source that sent FHIR_NOTIFY_AUTH_FAILURES_PER_IP wrong ones gets 429
// without a database read until it refills), reads
// only the resource type from the body (empty body: a ping; a body that is
// not a FHIR resource or Bundle: 400, nothing stored), enqueues a pull and
// answers 202. The
// notification is a hint: the pull re-reads from the EHR, so the body is
// never stored.
func (s *Server) handleFHIRNotify(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("endpoint_name")
	secret := r.Header.Get(FHIRSecretHeader)
	if secret == "" {
		if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			secret = v
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.WebhookMaxBodyBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	} else if err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	src, now := s.cfg.TrustedProxies.sourceKey(r), time.Now()
	if wait, blocked := s.fhirAuth.blocked(src, now); blocked {
		setRetryAfter(w, wait)
		http.Error(w, "too many wrong secrets from this address, try again later", http.StatusTooManyRequests)
		return
	}
	if _, err := fhir.NotifyAuthenticate(r.Context(), s.pool, name, secret); errors.Is(err, fhir.ErrBadSecret) {
		s.fhirAuth.failed(src, now)
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	} else if err != nil {
		s.logger.ErrorContext(r.Context(), "error checking fhir notification", slog.String("endpoint", name), slog.Any("error", err))
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	rt := r.PathValue("type")
	if rt != "" && !reFHIRType.MatchString(rt) {
		http.Error(w, "not a FHIR resource type", http.StatusBadRequest)
		return
	}
	if len(bytes.TrimSpace(body)) > 0 {
		t, ok := fhir.ParseNotification(body)
		if !ok {
			http.Error(w, "body is not a FHIR resource or notification Bundle", http.StatusBadRequest)
			return
		}
		if rt == "" && reFHIRType.MatchString(t) {
			rt = t
		}
	}
	n, err := fhir.Notify(r.Context(), s.pool, name, secret, rt)
	if errors.Is(err, fhir.ErrBadSecret) {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	if err != nil {
		s.logger.ErrorContext(r.Context(), "error enqueuing fhir pull", slog.String("endpoint", name), slog.Any("error", err))
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	s.logger.DebugContext(r.Context(), "fhir notification", slog.String("endpoint", name), slog.Int("pulls_enqueued", n))
	w.WriteHeader(http.StatusAccepted)
}

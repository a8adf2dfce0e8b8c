package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/telemetry"
	"github.com/switchboard-health/switchboard/jobs"
)

// webhookStoreTimeout bounds the transaction that stores a callback. Vendors
// wait for the answer; a stuck database must not hold their connection.
const webhookStoreTimeout = 10 * time.Second

// errBadSignature and errMalformed classify a webhookRoute.parse failure:
// 403 and 400, nothing stored. Wrap them with the detail (no PHI: the
// detail is logged).
var (
	errBadSignature = errors.New("bad signature")
	errMalformed    = errors.New("malformed callback")
	errUnconfigured = errors.New("provider not configured")
)

// inboundEvent is a verified callback ready for the inbox.
type inboundEvent struct {
	// ProviderEventID deduplicates replays, unique per provider.
	ProviderEventID string
	// EventType says what the worker does with it, e.g. "message.status".
	EventType string
}

// webhookRoute is one vendor callback route. New routes (Twilio inbound,
// Telnyx, Google Health, FHIR) need only a parse function.
type webhookRoute struct {
	// provider is inbound_webhooks.provider and the metric's provider label.
	provider string
	// route is the metric's route label: the path pattern.
	route string
	// parse verifies the signature over the raw body and extracts the
	// event. Its errors wrap errBadSignature, errMalformed or
	// errUnconfigured.
	parse func(r *http.Request, body []byte) (inboundEvent, error)
	// ok writes the success answer; nil answers 200 with an empty body.
	ok func(w http.ResponseWriter)
}

// webhookHandler reads a limited body, verifies and parses it with
// route.parse, stores the callback and its webhook_process job in one
// transaction and answers 200 with an empty body.
func (s *Server) webhookHandler(route webhookRoute) http.Handler {
	// Export every series at zero so that rates and alerts work from start.
	for _, res := range allResults {
		webhooksTotal.WithLabelValues(route.provider, route.route, res)
	}
	return webhookEndpoint{s: s, route: route}
}

// webhookEndpoint serves one webhook route. It makes its own server span
// (telemetry.Handler leaves it alone): the span's parent may be the trace of
// the message the URL names, read from the database, and only a webhook whose
// signature is verified may make the api read it; an unauthenticated caller
// must not be able to make the api query the database at will.
type webhookEndpoint struct {
	s     *Server
	route webhookRoute
}

func (e webhookEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ev, body, result, status := e.s.verifyWebhook(w, r, e.route)
	if telemetry.Enabled() {
		ctx, span := telemetry.StartWebhookSpan(r, start, status == http.StatusOK, e.s.sendTrace)
		defer func() { telemetry.EndWebhookSpan(span, status) }()
		r = r.WithContext(ctx)
	}
	if status == http.StatusOK {
		result, status = e.s.saveWebhook(r.Context(), e.route, ev, body)
	}
	webhooksTotal.WithLabelValues(e.route.provider, e.route.route, result).Inc()
	if status != http.StatusOK {
		http.Error(w, http.StatusText(status), status)
		return
	}
	if e.route.ok != nil {
		e.route.ok(w)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// verifyWebhook reads the body and verifies and parses it with route.parse.
// It returns the event and 200 when the webhook is verified, or the metric
// result and the status to answer; it never touches the database.
func (s *Server) verifyWebhook(w http.ResponseWriter, r *http.Request, route webhookRoute) (inboundEvent, []byte, string, int) {
	ctx := r.Context()
	log := s.logger.With(slog.String("vendor", route.provider), slog.String("route", route.route))

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.WebhookMaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			log.WarnContext(ctx, "webhook body over the limit", slog.Int64("limit_bytes", tooLarge.Limit))
			return inboundEvent{}, nil, resultTooLarge, http.StatusRequestEntityTooLarge
		}
		log.InfoContext(ctx, "error reading webhook body", slog.Any("error", err))
		return inboundEvent{}, nil, resultMalformed, http.StatusBadRequest
	}

	ev, err := route.parse(r, body)
	switch {
	case errors.Is(err, errBadSignature):
		log.WarnContext(ctx, "webhook rejected", slog.Any("error", err))
		return inboundEvent{}, nil, resultBadSignature, http.StatusForbidden
	case errors.Is(err, errMalformed):
		log.WarnContext(ctx, "webhook rejected", slog.Any("error", err))
		return inboundEvent{}, nil, resultMalformed, http.StatusBadRequest
	case errors.Is(err, errUnconfigured):
		log.ErrorContext(ctx, "webhook received but the provider is not configured")
		return inboundEvent{}, nil, resultError, http.StatusServiceUnavailable
	case err != nil:
		log.ErrorContext(ctx, "error parsing webhook", slog.Any("error", err))
		return inboundEvent{}, nil, resultError, http.StatusInternalServerError
	}
	return ev, body, "", http.StatusOK
}

// saveWebhook stores a verified webhook and returns the metric result and
// the status to answer.
func (s *Server) saveWebhook(ctx context.Context, route webhookRoute, ev inboundEvent, body []byte) (string, int) {
	log := s.logger.With(slog.String("vendor", route.provider), slog.String("route", route.route))
	id, inserted, err := s.storeWebhook(ctx, route.provider, ev, body)
	if err != nil {
		log.ErrorContext(ctx, "error storing webhook", slog.Any("error", err))
		return resultError, http.StatusInternalServerError
	}
	if !inserted {
		log.DebugContext(ctx, "duplicate webhook ignored", slog.String("event_type", ev.EventType))
		return resultDuplicate, http.StatusOK
	}
	log.DebugContext(ctx, "webhook stored", slog.Int64("webhook_id", id), slog.String("event_type", ev.EventType))
	return resultAccepted, http.StatusOK
}

// storeWebhook inserts the inbox row and, when it is new, its processing job,
// in one transaction. It reports whether a row was inserted.
func (s *Server) storeWebhook(ctx context.Context, provider string, ev inboundEvent, body []byte) (int64, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, webhookStoreTimeout)
	defer cancel()

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("error beginning transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	id, err := s.queries.InboundWebhookInsert(ctx, tx, db.InboundWebhookInsertParams{
		Provider:        provider,
		ProviderEventID: ev.ProviderEventID,
		EventType:       ev.EventType,
		RawBody:         body,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil // already stored: the rollback ends the empty tx
	}
	if err != nil {
		return 0, false, fmt.Errorf("error inserting inbound webhook: %w", err)
	}
	if _, err := s.client.InsertTx(ctx, tx, jobs.WebhookProcessArgs{WebhookID: id}, nil); err != nil {
		return 0, false, fmt.Errorf("error inserting webhook_process job: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, false, fmt.Errorf("error committing inbound webhook: %w", err)
	}
	return id, true, nil
}

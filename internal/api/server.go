package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	twilioclient "github.com/twilio/twilio-go/client"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/errgroup"
	"riverqueue.com/riverui"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/httpserver"
	"github.com/switchboard-health/switchboard/internal/telemetry"
)

// RiverSchema is the schema River's tables live in. New refuses a River
// client configured with another one: River UI reads through the client's
// schema.
const RiverSchema = "switchboard"

// riverUIPrefix is where River UI is mounted.
const riverUIPrefix = "/riverui"

// Server is `switchboard api`. Build it with New, then Run it.
type Server struct {
	cfg     Config
	baseURL string // PublicBaseURL without a trailing slash
	pool    *pgxpool.Pool
	client  *river.Client[pgx.Tx]
	logger  *slog.Logger
	queries *db.Queries

	twilioValidator twilioclient.RequestValidator // twilio-go's own

	operator *operatorAuth
	sso      *sso // nil without OIDC
	uploads  *failureThrottle
	fhirAuth *failureThrottle
	riverUI  *riverui.Handler
	handler  http.Handler
}

// New builds the server. client is an insert-only River client on pool with
// Schema RiverSchema. New returns an error when PUBLIC_BASE_URL is not an
// absolute http(s) URL, when only one of the operator username and password
// hash is set or the hash is not bcrypt, when the body limit is negative, or
// when River UI cannot be built.
func New(cfg Config, pool *pgxpool.Pool, client *river.Client[pgx.Tx], logger *slog.Logger) (*Server, error) {
	if pool == nil {
		return nil, errors.New("error creating api server: pool is nil")
	}
	if client == nil {
		return nil, errors.New("error creating api server: river client is nil")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if schema := client.Schema(); schema != RiverSchema {
		return nil, fmt.Errorf("error creating api server: river client schema is %q, want %q", schema, RiverSchema)
	}
	if cfg.Addr == "" {
		cfg.Addr = ":8080"
	}
	if cfg.MetricsAddr == "" {
		cfg.MetricsAddr = "127.0.0.1:9090"
	}
	baseURL, err := parsePublicBaseURL(cfg.PublicBaseURL)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.WebhookMaxBodyBytes == 0:
		cfg.WebhookMaxBodyBytes = DefaultWebhookMaxBodyBytes
	case cfg.WebhookMaxBodyBytes < 0:
		return nil, fmt.Errorf("WEBHOOK_MAX_BODY_BYTES must be positive, got %d", cfg.WebhookMaxBodyBytes)
	}
	operator, err := newOperatorAuth(cfg.OperatorUsername, cfg.OperatorPasswordHash, cfg.Login)
	if err != nil {
		return nil, err
	}

	sso, err := newSSO(cfg.SSO, baseURL, logger)
	if err != nil {
		return nil, err
	}

	ui, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    logger.With(slog.String("component", "riverui")),
		Prefix:    riverUIPrefix,
	})
	if err != nil {
		return nil, fmt.Errorf("error creating river ui: %w", err)
	}

	s := &Server{
		cfg:             cfg,
		baseURL:         baseURL,
		pool:            pool,
		client:          client,
		logger:          logger,
		queries:         db.New(),
		twilioValidator: twilioclient.NewRequestValidator(cfg.TwilioAuthToken),
		operator:        operator,
		sso:             sso,
		uploads:         cfg.UploadAuth.throttle(),
		fhirAuth:        cfg.FHIRAuth.throttle(),
		riverUI:         ui,
	}
	mux := s.routes()
	s.handler = mux
	if telemetry.Enabled() {
		s.handler = telemetry.Handler(mux, func(r *http.Request) bool {
			// Webhook routes make their own server span, once verified.
			h, _ := mux.Handler(r)
			_, ok := h.(webhookEndpoint)
			return ok
		})
	}

	if cfg.TwilioAuthToken == "" {
		logger.Warn("twilio auth token not set: twilio callbacks will answer 503")
	}
	if !operator.configured() && sso == nil {
		logger.Warn("operator credentials not set: river ui will answer 503")
	}
	return s, nil
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()

	probes := httpserver.Probes(s.pool)
	mux.Handle("/healthz", probes)
	mux.Handle("/readyz", probes)

	mux.Handle("POST "+routeTwilioStatus, s.webhookHandler(s.twilioStatusRoute()))

	mux.HandleFunc("GET "+routeGoogleHealthStart, s.handleGoogleHealthStartPage)
	mux.HandleFunc("POST "+routeGoogleHealthStart, s.handleGoogleHealthStart)
	mux.HandleFunc("GET "+routeGoogleHealthCallback, s.handleGoogleHealthCallback)
	mux.Handle("POST "+routeGoogleHealthHook, s.handleGoogleHealthWebhook())
	mux.HandleFunc("POST "+routeAppleHealthSamples, s.handleAppleHealthSamples)
	mux.Handle("POST "+routeTwilioInbound, s.webhookHandler(s.twilioInboundRoute()))
	mux.Handle("POST "+routeTelnyx, s.webhookHandler(s.telnyxRoute(routeTelnyx)))
	mux.Handle("POST "+routeTelnyxStatus, s.webhookHandler(s.telnyxRoute(routeTelnyxStatus)))
	mux.HandleFunc("POST "+routeFHIRNotify, s.handleFHIRNotify)
	mux.HandleFunc("PUT "+routeFHIRNotifyPut, s.handleFHIRNotify)

	// Browsers send Basic credentials with cross-site requests too: refuse
	// cross-origin state changes (River UI's cancel, retry, pause).
	ui := s.requireOperator(http.NewCrossOriginProtection().Handler(s.riverUI))
	mux.Handle(riverUIPrefix, ui)
	mux.Handle(riverUIPrefix+"/", ui)
	mux.Handle("GET /status", s.requireOperator(http.HandlerFunc(s.handleStatus)))
	if s.sso != nil {
		mux.HandleFunc("GET "+routeSSOLogin, s.sso.handleLogin)
		mux.HandleFunc("GET "+routeSSOCallback, s.sso.handleCallback)
		mux.Handle("POST "+routeSSOLogout, http.NewCrossOriginProtection().Handler(http.HandlerFunc(s.sso.handleLogout)))
	}
	return mux
}

// Handler returns the server's routes.
func (s *Server) Handler() http.Handler { return s.handler }

// sendTrace is the traceparent the send job of a message carries, so a
// vendor's status webhook joins the trace that sent it; "" once River has
// cleaned the job. Only a verified webhook calls it (webhookEndpoint).
func (s *Server) sendTrace(ctx context.Context, messageID int64) (string, error) {
	var tp *string
	err := s.pool.QueryRow(ctx, `SELECT j.metadata->>'traceparent' FROM switchboard.messages m
		JOIN switchboard.river_job j ON j.id = m.job_id WHERE m.id = $1`, messageID).Scan(&tp)
	if err != nil || tp == nil {
		return "", err
	}
	return *tp, nil
}

// Start starts River UI's background services; they stop when ctx ends.
// Run calls it; tests that serve Handler themselves call it first. It
// returns River UI's start error.
func (s *Server) Start(ctx context.Context) error {
	if err := s.riverUI.Start(ctx); err != nil {
		return fmt.Errorf("error starting river ui: %w", err)
	}
	return nil
}

// MetricsHandler serves /metrics (bearer token when MetricsToken is set);
// Run serves it on Config.MetricsAddr.
func (s *Server) MetricsHandler() http.Handler { return httpserver.Metrics(s.cfg.MetricsToken) }

// Run starts River UI and serves Handler on Config.Addr and MetricsHandler
// on Config.MetricsAddr until ctx ends, then shuts down gracefully. It
// returns nil after a clean shutdown and an error when River UI cannot
// start or a server cannot listen or serve.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.cfg.HTTP.Serve(gctx, s.cfg.Addr, s.handler, s.logger) })
	g.Go(func() error { return s.cfg.HTTP.Serve(gctx, s.cfg.MetricsAddr, s.MetricsHandler(), s.logger) })
	return g.Wait()
}

// publicURL is the URL a vendor called: PUBLIC_BASE_URL followed by the path
// and query exactly as received. The Host header is never used.
func (s *Server) publicURL(r *http.Request) string {
	return s.baseURL + r.URL.RequestURI()
}

// parsePublicBaseURL checks PUBLIC_BASE_URL and returns it without a trailing
// slash.
func parsePublicBaseURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("PUBLIC_BASE_URL is not set")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("error parsing PUBLIC_BASE_URL: %w", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("PUBLIC_BASE_URL must be an absolute http(s) URL without credentials, query or fragment, got %q", raw)
	}
	return strings.TrimSuffix(raw, "/"), nil
}

// newOperatorAuth checks the operator credentials. An unset hash turns the
// operator routes off (they answer 503), whatever the username: that is what
// deploy/.env.example ships until an operator sets a password. A hash
// without a username, or one that is not bcrypt, is a mistake.
func newOperatorAuth(username string, hash Secret, login LoginConfig) (*operatorAuth, error) {
	switch {
	case hash == "":
		return newOperatorState(&operatorAuth{}, login), nil
	case username == "":
		return nil, errors.New("OPERATOR_PASSWORD_HASH is set without OPERATOR_USERNAME")
	}
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		// bcrypt's error quotes part of the hash: not wrapped.
		return nil, errors.New("OPERATOR_PASSWORD_HASH is not a bcrypt hash")
	}
	return newOperatorState(&operatorAuth{username: username, hash: []byte(hash)}, login), nil
}

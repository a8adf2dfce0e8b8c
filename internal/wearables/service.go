package wearables

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/googlehealth"
	"github.com/switchboard-health/switchboard/internal/ratelimit"
	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/internal/secrets"
)

// Inserter inserts River jobs in a transaction (*river.Client[pgx.Tx]).
type Inserter interface {
	InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
}

// Deps are what the wearables workers and api need.
type Deps struct {
	Pool     *pgxpool.Pool
	Registry *resilience.Registry // the google_health destination is registered on it
	Limiter  *ratelimit.Limiter
	Keys     *secrets.Keyring
	Logger   *slog.Logger
	Config   Config
	// HTTPClient calls Google (nil: a client with a 30 s timeout).
	HTTPClient *http.Client
	// UnavailableLimits is job_kinds.unavailable_limit by kind, as the
	// worker read it at start-up (worker.UnavailableLimits); Register
	// requires it.
	UnavailableLimits map[string]time.Duration
}

// ErrNeedsReauth is returned when a connection's grant is dead: it moved to
// needs_reauth and the patient was asked to reconnect. Jobs complete on it.
var ErrNeedsReauth = errors.New("connection needs the patient's consent again")

// errInactive ends a job for a connection that is not active.
var errInactive = errors.New("connection is not active")

// Service is the wearables domain shared by the workers and the api. It is
// safe for concurrent use.
type Service struct {
	cfg       Config
	pool      *pgxpool.Pool
	q         *db.Queries
	keys      *secrets.Keyring
	oauth     *googlehealth.OAuth
	api       *googlehealth.Client
	verifier  *googlehealth.Verifier
	dest      *resilience.Destination
	limiter   *ratelimit.Limiter
	userLimit ratelimit.Limit
	logger    *slog.Logger
	now       func() time.Time
}

// newService checks deps and builds the service.
func newService(deps Deps) (*Service, error) {
	if deps.Pool == nil || deps.Keys == nil {
		return nil, errors.New("wearables: Pool and Keys are required")
	}
	cfg := deps.Config.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	limit, err := ratelimit.ParseLimit(cfg.UserRateLimit)
	if err != nil {
		return nil, fmt.Errorf("GOOGLE_HEALTH_USER_RATE_LIMIT: %w", err)
	}
	verifier, err := googlehealth.NewVerifier(cfg.Google)
	if err != nil {
		return nil, err
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		cfg: cfg, pool: deps.Pool, q: db.New(), keys: deps.Keys,
		oauth: googlehealth.NewOAuth(cfg.Google, deps.HTTPClient), api: googlehealth.NewClient(cfg.Google, deps.HTTPClient),
		verifier: verifier, limiter: deps.Limiter, userLimit: limit, logger: logger, now: time.Now,
	}
	if deps.Registry != nil {
		settings, err := resilience.LoadSettings(context.Background(), googlehealth.Provider)
		if err != nil {
			return nil, err
		}
		s.dest = deps.Registry.Register(googlehealth.Provider, settings, Outcome)
	}
	registerStaleGauge(deps.Pool)
	return s, nil
}

// Outcome tells the resilience layer which Google errors mean Google is
// failing: 5xx, timeouts and network errors; answers about our request or
// the patient's grant do not.
func Outcome(err error) resilience.Outcome {
	if googlehealth.ClassOf(err) == googlehealth.ClassRetryable {
		return resilience.Failing
	}
	return resilience.Healthy
}

// call runs fn through the google_health policies (when configured).
func (s *Service) call(ctx context.Context, fn func(context.Context) error) error {
	if s.dest == nil {
		return fn(ctx)
	}
	return s.dest.Call(ctx, true, fn)
}

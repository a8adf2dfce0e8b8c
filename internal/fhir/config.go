package fhir

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-health/switchboard/internal/ratelimit"
	"github.com/switchboard-health/switchboard/internal/resilience"
	"github.com/switchboard-health/switchboard/internal/secrets"
)

// Config is the FHIR integration's configuration (environment).
type Config struct {
	// IdentifierSystem is the system of Switchboard's business identifiers
	// on every resource it pushes; an endpoint may override it. Empty: this
	// deployment's own, urn:uuid:<switchboard.deployment id>. The example
	// value is refused (CheckIdentity).
	IdentifierSystem string `env:"FHIR_IDENTIFIER_SYSTEM"`
	// EchoTag ("system|code") is put in meta.tag of every write, so pulls
	// skip Switchboard's own resources.
	EchoTag string `env:"FHIR_ECHO_TAG, default=https://switchboard.example/fhir/tag|switchboard"`
	// PullOverlap is how far before the cursor each pull starts again
	// (clock skew, late commits); duplicates are dropped by versionId.
	PullOverlap time.Duration `env:"FHIR_PULL_OVERLAP, default=5m"`
	// PullPageSize is the _count of pull searches.
	PullPageSize int `env:"FHIR_PULL_PAGE_SIZE, default=100"`
	// PullMaxPages bounds one pull job; a longer backlog continues in a
	// new job.
	PullMaxPages int `env:"FHIR_PULL_MAX_PAGES, default=50"`
	// PullScheduleEvery is how often fhir_pull_schedule runs.
	PullScheduleEvery time.Duration `env:"FHIR_PULL_SCHEDULE_EVERY, default=1m"`
	// JobTimeout bounds one fhir_push or fhir_pull job.
	JobTimeout time.Duration `env:"FHIR_JOB_TIMEOUT, default=2m"`
	// JSONSchema optionally names a copy of the official fhir.schema.json
	// to use instead of the embedded one (internal/fhir/r4spec).
	JSONSchema string `env:"FHIR_JSON_SCHEMA"`
	// MaxConflictRetries bounds re-read and re-apply after 409/412 in one job.
	MaxConflictRetries int `env:"FHIR_MAX_CONFLICT_RETRIES, default=3"`
}

func (c Config) withDefaults() Config {
	if c.EchoTag == "" {
		c.EchoTag = "https://switchboard.example/fhir/tag|switchboard"
	}
	if c.PullOverlap <= 0 {
		c.PullOverlap = 5 * time.Minute
	}
	if c.PullPageSize <= 0 {
		c.PullPageSize = 100
	}
	if c.PullMaxPages <= 0 {
		c.PullMaxPages = 50
	}
	if c.PullScheduleEvery <= 0 {
		c.PullScheduleEvery = time.Minute
	}
	if c.JobTimeout <= 0 {
		c.JobTimeout = 2 * time.Minute
	}
	if c.MaxConflictRetries <= 0 {
		c.MaxConflictRetries = 3
	}
	return c
}

// Deps are what the FHIR workers use.
type Deps struct {
	Pool     *pgxpool.Pool
	Registry *resilience.Registry
	Limiter  *ratelimit.Limiter
	// Keys opens sealed bearer tokens and signing keys; required for
	// endpoints that use them.
	Keys   *secrets.Keyring
	Logger *slog.Logger
	Config Config
	// HTTPClient makes FHIR and token requests; nil: a default client. The
	// resilience destination's timeout bounds each call.
	HTTPClient *http.Client
	// UnavailableLimits is job_kinds.unavailable_limit by kind, as the
	// worker read it at start-up (worker.UnavailableLimits); Register
	// requires it.
	UnavailableLimits map[string]time.Duration
}

func (d Deps) check() (Deps, error) {
	if d.Pool == nil {
		return d, fmt.Errorf("fhir: Deps.Pool is required")
	}
	if d.Registry == nil {
		d.Registry = resilience.New(nil)
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.HTTPClient == nil {
		d.HTTPClient = &http.Client{Timeout: 60 * time.Second}
	}
	d.Config = d.Config.withDefaults()
	if err := d.Config.CheckIdentity(); err != nil {
		return d, err
	}
	if _, err := ParseCoding(d.Config.EchoTag); err != nil {
		return d, fmt.Errorf("FHIR_ECHO_TAG: %w", err)
	}
	return d, nil
}

package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/fhir/smart"
	"github.com/switchboard-health/switchboard/internal/ratelimit"
	"github.com/switchboard-health/switchboard/internal/secrets"
)

// AddEndpointParams describe a new EHR endpoint.
type AddEndpointParams struct {
	Name     string
	BaseURL  string
	AuthKind AuthMethod // AuthNone when empty
	// BearerToken is sealed at rest (auth bearer).
	BearerToken string
	// SMART Backend Services: a signing key of Alg (RS384 or ES384) is
	// generated and its private part sealed; publish `switchboard ehr jwks`.
	ClientID, TokenURL, Scopes, Alg string
	PushTypes, PullTypes            []string
	RateLimit                       string
	IdentifierSystem                string
	IncludeSMSBody                  bool
	// WebhookSecret is the rest-hook shared secret; only its hash is stored.
	WebhookSecret string
	PullInterval  time.Duration
}

// InputError is a bad parameter of an admin action; the message names it.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// AddEndpoint stores an endpoint (and its signing key) with an audit entry.
// It returns *InputError for bad parameters.
func AddEndpoint(ctx context.Context, pool *pgxpool.Pool, keys *secrets.Keyring, p AddEndpointParams, actor string) (db.EHREndpoint, error) {
	if p.AuthKind == "" {
		p.AuthKind = AuthNone
	}
	if p.PullInterval == 0 {
		p.PullInterval = 5 * time.Minute
	}
	if _, err := NewClient(p.BaseURL, nil, nil); err != nil {
		return db.EHREndpoint{}, &InputError{"base-url must be an absolute http(s) URL"}
	}
	p.BaseURL = strings.TrimSuffix(p.BaseURL, "/")
	if isExampleSystem(p.IdentifierSystem) {
		return db.EHREndpoint{}, &InputError{"identifier-system is the documentation's example (" + p.IdentifierSystem + "): " +
			"two deployments with it overwrite each other's resources on a shared EHR; omit it (this deployment's urn:uuid is used) " +
			"or give a system of your own"}
	}
	if p.RateLimit != "" {
		if _, err := ratelimit.ParseLimit(p.RateLimit); err != nil {
			return db.EHREndpoint{}, &InputError{"rate-limit: " + err.Error()}
		}
	}
	for _, t := range p.PushTypes {
		if !slices.Contains([]string{"Patient", "Observation", "Device", "Communication", "Consent", "*"}, t) {
			return db.EHREndpoint{}, &InputError{"push: unknown type " + t}
		}
	}
	if len(p.PushTypes) > 0 && !slices.Contains(p.PushTypes, "Patient") && !slices.Equal(p.PushTypes, []string{"*"}) {
		p.PushTypes = append([]string{"Patient"}, p.PushTypes...)
	}
	for _, t := range p.PullTypes {
		if t != "Patient" && t != "Observation" {
			return db.EHREndpoint{}, &InputError{"pull: types are Patient and Observation"}
		}
	}
	params := db.EHREndpointInsertParams{Name: p.Name, BaseUrl: p.BaseURL, AuthKind: string(p.AuthKind),
		PushTypes: nonNil(p.PushTypes), PullTypes: nonNil(p.PullTypes), IncludeSmsBody: p.IncludeSMSBody,
		PullInterval: pgtype.Interval{Microseconds: p.PullInterval.Microseconds(), Valid: true},
		ClientID:     optional(p.ClientID), TokenUrl: optional(p.TokenURL), Scopes: optional(p.Scopes),
		RateLimit: optional(p.RateLimit), IdentifierSystem: optional(p.IdentifierSystem)}
	if p.WebhookSecret != "" {
		params.WebhookSecretHash = HashSecret(p.WebhookSecret)
	}
	var ep db.EHREndpoint
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		q := db.New()
		m, ok := authMethods[p.AuthKind]
		if !ok {
			return &InputError{"auth must be " + AuthFlags()}
		}
		if err := m.add(ctx, tx, keys, &p, &params); err != nil {
			return err
		}
		var err error
		ep, err = q.EHREndpointInsert(ctx, tx, params)
		if err != nil {
			return err
		}
		detail, _ := json.Marshal(map[string]any{"base_url": ep.BaseUrl, "auth": ep.AuthKind, "push": ep.PushTypes, "pull": ep.PullTypes})
		return q.AuditInsert(ctx, tx, db.AuditInsertParams{Actor: actor, Action: "ehr.add", TargetType: "ehr_endpoint",
			TargetID: ep.Name, Detail: detail})
	})
	return ep, err
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// TestEndpoint fetches /metadata and .well-known/smart-configuration,
// stores the capability summary and audits the check. It returns the
// summary, or an error when /metadata is not a CapabilityStatement.
func TestEndpoint(ctx context.Context, pool *pgxpool.Pool, httpClient *http.Client, name, actor string) (*Capabilities, error) {
	q := db.New()
	ep, err := q.EHREndpointGetByName(ctx, pool, name)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, &InputError{"no EHR endpoint named " + name}
	}
	if err != nil {
		return nil, err
	}
	// /metadata and the SMART configuration are public (no token needed).
	c, err := NewClient(ep.BaseUrl, httpClient, nil)
	if err != nil {
		return nil, err
	}
	body, err := c.Capabilities(ctx)
	if err != nil {
		return nil, err
	}
	caps, err := ParseCapabilities(body)
	if err != nil {
		return nil, err
	}
	if sc, err := c.SmartConfiguration(ctx); err == nil {
		var s SMARTCaps
		if json.Unmarshal(sc, &s) == nil && s.TokenEndpoint != "" {
			caps.SMART = &s
		}
	}
	b, _ := json.Marshal(caps)
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := q.EHREndpointSetCapabilities(ctx, tx, db.EHREndpointSetCapabilitiesParams{ID: ep.ID, Capabilities: b}); err != nil {
			return err
		}
		detail, _ := json.Marshal(map[string]any{"fhirVersion": caps.FHIRVersion, "smart": caps.SMART != nil})
		return q.AuditInsert(ctx, tx, db.AuditInsertParams{Actor: actor, Action: "ehr.test", TargetType: "ehr_endpoint", TargetID: name, Detail: detail})
	})
	return caps, err
}

// PublicJWKS returns the JSON Web Key Set of every active signing key, to
// register with EHRs (as a JWKS URL's content or a static JWKS).
func PublicJWKS(ctx context.Context, pool *pgxpool.Pool) ([]byte, error) {
	rows, err := db.New().EHRSigningKeyListActive(ctx, pool)
	if err != nil {
		return nil, err
	}
	var keys []jose.JSONWebKey
	for _, r := range rows {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(r.PublicJwk); err != nil {
			return nil, fmt.Errorf("signing key %s: %w", r.Kid, err)
		}
		keys = append(keys, k.Public())
	}
	return smart.JWKS(keys...)
}

// DemoEndpointName is the endpoint AddDemoEndpoint creates.
const DemoEndpointName = "sandbox"

// DemoWebhookSecret is the demo endpoint's rest-hook shared secret.
const DemoWebhookSecret = "sandbox-secret"

// AddDemoEndpoint points the "sandbox" endpoint at baseURL (the local FHIR
// peer of `switchboard dev`): created on first use with every push and pull
// type, its base URL updated on later runs (the peer's port changes).
func AddDemoEndpoint(ctx context.Context, pool *pgxpool.Pool, baseURL string) (db.EHREndpoint, error) {
	q := db.New()
	ep, err := q.EHREndpointGetByName(ctx, pool, DemoEndpointName)
	if err == nil {
		if err := q.EHREndpointSetBaseURL(ctx, pool, db.EHREndpointSetBaseURLParams{ID: ep.ID, BaseUrl: baseURL}); err != nil {
			return ep, err
		}
		return q.EHREndpointGet(ctx, pool, ep.ID)
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return ep, err
	}
	return AddEndpoint(ctx, pool, nil, AddEndpointParams{Name: DemoEndpointName, BaseURL: baseURL, AuthKind: "none",
		PushTypes: []string{"Patient", "Observation", "Device", "Communication", "Consent"}, PullTypes: []string{"Patient", "Observation"},
		WebhookSecret: DemoWebhookSecret, PullInterval: time.Minute, RateLimit: "50/s burst 20"}, "switchboard-dev")
}

package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/fhir/smart"
	"github.com/switchboard-health/switchboard/internal/ratelimit"
	"github.com/switchboard-health/switchboard/internal/resilience"
)

// Capabilities is the summary `switchboard ehr test` stores from an
// endpoint's CapabilityStatement and SMART configuration. The client never
// uses an interaction the summary does not declare.
type Capabilities struct {
	FHIRVersion  string                  `json:"fhirVersion"`
	Software     string                  `json:"software,omitempty"`
	Resources    map[string]ResourceCaps `json:"resources"`
	Interactions []string                `json:"interactions,omitempty"` // system level: transaction, batch
	SMART        *SMARTCaps              `json:"smart,omitempty"`
}

// ResourceCaps is what the server declares for one resource type.
type ResourceCaps struct {
	Interactions      []string `json:"interactions"`
	ConditionalCreate bool     `json:"conditionalCreate,omitempty"`
	ConditionalUpdate bool     `json:"conditionalUpdate,omitempty"`
	Versioning        string   `json:"versioning,omitempty"`
	SearchParams      []string `json:"searchParams,omitempty"`
	// Profiles are the declared profile and supportedProfile values.
	Profiles []string `json:"profiles,omitempty"`
}

// SMARTCaps is the part of .well-known/smart-configuration Switchboard uses.
type SMARTCaps struct {
	TokenEndpoint     string   `json:"token_endpoint,omitempty"`
	GrantTypes        []string `json:"grant_types_supported,omitempty"`
	AuthMethods       []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	SigningAlgorithms []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	Scopes            []string `json:"scopes_supported,omitempty"`
	Capabilities      []string `json:"capabilities,omitempty"`
}

// ParseCapabilities reads a CapabilityStatement leniently (unknown codes,
// R4B or R5 additions are ignored) into a summary. It returns an error when
// the body is not a CapabilityStatement.
func ParseCapabilities(body []byte) (*Capabilities, error) {
	var cs struct {
		ResourceType string `json:"resourceType"`
		FHIRVersion  string `json:"fhirVersion"`
		Software     struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"software"`
		Rest []struct {
			Mode     string `json:"mode"`
			Resource []struct {
				Type        string `json:"type"`
				Interaction []struct {
					Code string `json:"code"`
				} `json:"interaction"`
				Versioning        string `json:"versioning"`
				ConditionalCreate bool   `json:"conditionalCreate"`
				ConditionalUpdate bool   `json:"conditionalUpdate"`
				SearchParam       []struct {
					Name string `json:"name"`
				} `json:"searchParam"`
				Profile          string   `json:"profile"`
				SupportedProfile []string `json:"supportedProfile"`
			} `json:"resource"`
			Interaction []struct {
				Code string `json:"code"`
			} `json:"interaction"`
		} `json:"rest"`
	}
	if err := json.Unmarshal(body, &cs); err != nil || cs.ResourceType != "CapabilityStatement" {
		return nil, errors.New("fhir: /metadata did not return a CapabilityStatement")
	}
	c := &Capabilities{FHIRVersion: cs.FHIRVersion, Software: strings.TrimSpace(cs.Software.Name + " " + cs.Software.Version),
		Resources: map[string]ResourceCaps{}}
	for _, rest := range cs.Rest {
		if rest.Mode != "" && rest.Mode != "server" {
			continue
		}
		for _, i := range rest.Interaction {
			c.Interactions = append(c.Interactions, i.Code)
		}
		for _, r := range rest.Resource {
			rc := ResourceCaps{Versioning: r.Versioning, ConditionalCreate: r.ConditionalCreate, ConditionalUpdate: r.ConditionalUpdate}
			for _, i := range r.Interaction {
				rc.Interactions = append(rc.Interactions, i.Code)
			}
			for _, p := range r.SearchParam {
				rc.SearchParams = append(rc.SearchParams, p.Name)
			}
			if r.Profile != "" {
				rc.Profiles = append(rc.Profiles, r.Profile)
			}
			rc.Profiles = append(rc.Profiles, r.SupportedProfile...)
			c.Resources[r.Type] = rc
		}
	}
	return c, nil
}

// Require returns an *UndeclaredError unless the server declares the
// interaction ("create", "update", "read", "search-type",
// "conditional-create", or system-level "transaction" with an empty type).
func (c *Capabilities) Require(interaction, resourceType string) error {
	if c == nil {
		return &UndeclaredError{Interaction: interaction, ResourceType: resourceType}
	}
	if resourceType == "" {
		if slices.Contains(c.Interactions, interaction) {
			return nil
		}
		return &UndeclaredError{Interaction: interaction}
	}
	rc, ok := c.Resources[resourceType]
	switch {
	case !ok:
	case interaction == "conditional-create" && rc.ConditionalCreate && slices.Contains(rc.Interactions, "create"):
		return nil
	case slices.Contains(rc.Interactions, interaction):
		return nil
	}
	return &UndeclaredError{Interaction: interaction, ResourceType: resourceType}
}

// Endpoint is a usable EHR endpoint: its row, client, destination and limit.
type Endpoint struct {
	Row    db.EHREndpoint
	Client *Client
	Dest   *resilience.Destination
	Limit  *ratelimit.Limit
	Caps   *Capabilities
	Auth   Authorizer
	opts   MapOptions
}

// DestinationName is the resilience destination of an endpoint.
func DestinationName(endpointName string) string { return "ehr:" + endpointName }

// RateLimitKey is the internal/ratelimit key of an endpoint.
func RateLimitKey(endpointName string) string { return "ehr:" + endpointName + ":all" }

// Pushes reports whether the endpoint takes a resource type.
func (e *Endpoint) Pushes(resourceType string) bool {
	return slices.Contains(e.Row.PushTypes, resourceType) || slices.Contains(e.Row.PushTypes, "*")
}

// MapOptions returns the endpoint's mapping options.
func (e *Endpoint) MapOptions() MapOptions { return e.opts }

// endpoints builds and caches Endpoints, rebuilding one when its row changed.
type endpoints struct {
	deps     Deps
	identity identitySource
	mu       sync.Mutex
	m        map[int64]*Endpoint
}

func newEndpoints(d Deps) *endpoints { return &endpoints{deps: d, m: map[int64]*Endpoint{}} }

func (es *endpoints) get(ctx context.Context, id int64) (*Endpoint, error) {
	row, err := db.New().EHREndpointGet(ctx, es.deps.Pool, id)
	if err != nil {
		return nil, err
	}
	es.mu.Lock()
	cached := es.m[id]
	es.mu.Unlock()
	if cached != nil && cached.Row.UpdatedAt.Equal(row.UpdatedAt) && sameTime(cached.Row.CapabilitiesAt, row.CapabilitiesAt) {
		return cached, nil
	}
	ep, err := es.build(ctx, row)
	if err != nil {
		return nil, err
	}
	es.mu.Lock()
	es.m[id] = ep
	es.mu.Unlock()
	return ep, nil
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// ConfigError is an endpoint whose configuration cannot work (a sealed
// secret that does not open, a bad rate limit): permanent until an operator
// fixes the row.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return "fhir endpoint configuration: " + e.Msg }

func (es *endpoints) build(ctx context.Context, row db.EHREndpoint) (*Endpoint, error) {
	d := es.deps
	ep := &Endpoint{Row: row}
	tag, _ := ParseCoding(d.Config.EchoTag)
	system, err := es.identity.system(ctx, d, row)
	if err != nil {
		return nil, err
	}
	ep.opts = MapOptions{IdentifierSystem: system, Tag: tag, IncludeSMSBody: row.IncludeSmsBody}
	if len(row.Capabilities) > 0 {
		var c Capabilities
		if err := json.Unmarshal(row.Capabilities, &c); err == nil {
			ep.Caps = &c
		}
	}
	if row.RateLimit != nil && *row.RateLimit != "" {
		l, err := ratelimit.ParseLimit(*row.RateLimit)
		if err != nil {
			return nil, &ConfigError{Msg: "rate_limit: " + err.Error()}
		}
		ep.Limit = &l
	}
	name := DestinationName(row.Name)
	if dst := d.Registry.Get(name); dst != nil {
		ep.Dest = dst
	} else {
		s, err := resilience.LoadSettings(ctx, name)
		if err != nil {
			return nil, &ConfigError{Msg: err.Error()}
		}
		ep.Dest = d.Registry.Register(name, s, DestinationOutcome)
	}
	auth, err := es.authorizer(ctx, row)
	if err != nil {
		return nil, err
	}
	ep.Auth = auth
	c, err := NewClient(row.BaseUrl, d.HTTPClient, auth)
	if err != nil {
		return nil, &ConfigError{Msg: err.Error()}
	}
	ep.Client = c
	return ep, nil
}

// authorizer builds the endpoint's token source.
func (es *endpoints) authorizer(ctx context.Context, row db.EHREndpoint) (Authorizer, error) {
	m, ok := authMethods[AuthMethod(row.AuthKind)]
	if !ok {
		return nil, &ConfigError{Msg: "unknown auth kind"}
	}
	return m.authorizer(ctx, es.deps, row)
}

// BearerAAD is the associated data of an endpoint's sealed bearer token.
func BearerAAD(endpointName string) []byte {
	return []byte("ehr_endpoints:" + endpointName + ":bearer_token")
}

// SigningKeyAAD is the associated data of a sealed private signing key.
func SigningKeyAAD(kid string) []byte { return []byte("ehr_signing_keys:" + kid + ":private_key") }

// LoadSigningKey opens a stored signing key.
func LoadSigningKey(ctx context.Context, d Deps, id int64) (smart.Key, error) {
	row, err := db.New().EHRSigningKeyGet(ctx, d.Pool, id)
	if err != nil {
		return smart.Key{}, fmt.Errorf("error loading signing key: %w", err)
	}
	der, err := d.Keys.Open(row.PrivateKeySealed, SigningKeyAAD(row.Kid))
	if err != nil {
		return smart.Key{}, &ConfigError{Msg: "signing key does not open: " + err.Error()}
	}
	k, err := smart.ParseKey(row.Kid, row.Alg, der)
	if err != nil {
		return smart.Key{}, &ConfigError{Msg: err.Error()}
	}
	return k, nil
}

// ready decides, before anything is sent, whether the endpoint can be
// called now: destination available and a rate-limit slot free. It returns
// the job's snooze (or dead letter after the kind's unavailable limit).
func (ep *Endpoint) ready(ctx context.Context, d Deps, job *rivertype.JobRow, unavailableLimit time.Duration) error {
	if err := ep.Dest.Ready(); err != nil {
		return resilience.Snooze(ctx, job, err, unavailableLimit)
	}
	if ep.Limit != nil && d.Limiter != nil {
		wait, err := d.Limiter.Take(ctx, RateLimitKey(ep.Row.Name), *ep.Limit)
		if err != nil {
			return fmt.Errorf("error applying rate limit: %w", err)
		}
		if wait > 0 {
			// The slot is booked: the job runs when it comes.
			return resilience.HoldFor(ctx, resilience.HoldRateSlot, DestinationName(ep.Row.Name), wait)
		}
	}
	return nil
}

// call runs one FHIR interaction through the endpoint's policies. Every
// interaction Switchboard makes is idempotent (reads, conditional creates,
// version-aware updates, transactions of conditional entries).
func (ep *Endpoint) call(ctx context.Context, fn func(context.Context) error) error {
	return ep.Dest.Call(ctx, true, fn)
}

// capabilities returns the declared capabilities, fetching /metadata once
// when the endpoint was never tested.
func (ep *Endpoint) capabilities(ctx context.Context, d Deps) (*Capabilities, error) {
	if ep.Caps != nil {
		return ep.Caps, nil
	}
	var body []byte
	if err := ep.call(ctx, func(ctx context.Context) error {
		var err error
		body, err = ep.Client.Capabilities(ctx)
		return err
	}); err != nil {
		return nil, err
	}
	c, err := ParseCapabilities(body)
	if err != nil {
		return nil, &Error{Op: "capabilities", Status: 200, Issues: []string{"not a CapabilityStatement"}}
	}
	b, _ := json.Marshal(c)
	if err := db.New().EHREndpointSetCapabilities(ctx, d.Pool, db.EHREndpointSetCapabilitiesParams{ID: ep.Row.ID, Capabilities: b}); err != nil {
		return nil, fmt.Errorf("error storing capabilities: %w", err)
	}
	ep.Caps = c
	return c, nil
}

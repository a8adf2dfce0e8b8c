package fhir

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-health/switchboard/db"
)

// ExampleIdentifierSystem is the identifier system earlier versions used
// by default. Every deployment that kept it wrote the same identifiers, so
// two of them on one EHR overwrote each other's resources: the api and
// worker refuse it as FHIR_IDENTIFIER_SYSTEM. Endpoints that pushed with it
// before the change keep it (ehr_endpoints.legacy_identifier_system).
const ExampleIdentifierSystem = "https://switchboard.example/fhir/identifier"

// CheckIdentity refuses an identifier system that is not this
// deployment's own: the example value (or anything under
// https://switchboard.example/). An empty FHIR_IDENTIFIER_SYSTEM is fine:
// the deployment's urn:uuid is used.
func (c Config) CheckIdentity() error {
	if isExampleSystem(c.IdentifierSystem) {
		return fmt.Errorf("FHIR_IDENTIFIER_SYSTEM is the documentation's example (%s): two deployments with it overwrite each other's "+
			"resources on a shared EHR; unset it (this deployment's urn:uuid is used) or set a system of your own", c.IdentifierSystem)
	}
	return nil
}

// isExampleSystem reports whether s is the documentation's example system
// or under it. The database refuses the same on ehr_endpoints (00095).
func isExampleSystem(s string) bool {
	return s == ExampleIdentifierSystem || strings.HasPrefix(s, "https://switchboard.example/")
}

// DeploymentSystem is this deployment's default identifier system:
// urn:uuid: and the id generated once by the first migration
// (switchboard.deployment).
func DeploymentSystem(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	id, err := db.New().DeploymentID(ctx, pool)
	if err != nil {
		return "", fmt.Errorf("error reading the deployment id: %w", err)
	}
	return "urn:uuid:" + id.String(), nil
}

// identitySource resolves an endpoint's identifier system: the endpoint's
// own, else FHIR_IDENTIFIER_SYSTEM, else the one it used before
// deployments had their own (legacy), else the deployment's urn:uuid.
type identitySource struct {
	mu         sync.Mutex
	deployment string
}

func (s *identitySource) system(ctx context.Context, d Deps, row db.EHREndpoint) (string, error) {
	switch {
	case row.IdentifierSystem != nil && *row.IdentifierSystem != "":
		return *row.IdentifierSystem, nil
	case d.Config.IdentifierSystem != "":
		return d.Config.IdentifierSystem, nil
	case row.LegacyIdentifierSystem:
		return ExampleIdentifierSystem, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deployment == "" {
		sys, err := DeploymentSystem(ctx, d.Pool)
		if err != nil {
			return "", err
		}
		s.deployment = sys
	}
	return s.deployment, nil
}

// tokenEscaper escapes a search token part: FHIR search gives \ , $ and |
// a meaning, so a literal one is preceded by \ (R4 search §3.1.1.6).
var tokenEscaper = strings.NewReplacer(`\`, `\\`, `|`, `\|`, `,`, `\,`, `$`, `\$`)

// Search is the identifier search parameter matching exactly this system
// and value, escaped and URL-encoded: "identifier=<system>|<value>".
func (i Identifier) Search() string {
	return "identifier=" + url.QueryEscape(tokenEscaper.Replace(i.System)+"|"+tokenEscaper.Replace(i.Value))
}

// identifierValueOf is the identifier value of an app reference. A "|" is
// percent-encoded ("%" too, then): FHIR's escape for it in a search (\|)
// is not honoured by every server (Medplum splits on it), and a
// conditional create that cannot match creates a duplicate. A reference
// that already holds "%7C" or "%25" is encoded as well, so no two
// references share a value ("a|b" and "a%7Cb" would otherwise both be
// "a%7Cb": one patient's record written into the other's) and
// externalRefOf reverses every value; any other reference is its own value.
func identifierValueOf(ref string) string {
	if !needsEncoding(ref) {
		return ref
	}
	return strings.NewReplacer("%", "%25", "|", "%7C").Replace(ref)
}

func needsEncoding(s string) bool {
	return strings.Contains(s, "|") || strings.Contains(s, "%7C") || strings.Contains(s, "%25")
}

// externalRefOf reverses identifierValueOf: a value holding "%7C" or "%25"
// (and no "|") was encoded.
func externalRefOf(value string) string {
	if strings.Contains(value, "|") || !needsEncoding(value) {
		return value
	}
	return strings.NewReplacer("%7C", "|", "%25", "%").Replace(value)
}

// holdsIdentifier reports whether a resource carries exactly this
// identifier (system and value, case-sensitive). A conditional create's
// match is checked with it: a server may match loosely (case-insensitive
// values, an escape it does not honour), and Switchboard never writes
// into a resource that is not its record.
func holdsIdentifier(resource []byte, ident Identifier) bool {
	r, err := decodeResource(resource)
	if err != nil {
		return false
	}
	ids, _ := r["identifier"].([]any)
	for _, i := range ids {
		if m, ok := i.(map[string]any); ok && sval(m["system"]) == ident.System && sval(m["value"]) == ident.Value {
			return true
		}
	}
	return false
}

// IdentityError: the server answered a conditional create with a resource
// that does not carry Switchboard's identifier exactly — another record.
// Permanent: nothing is written into it.
type IdentityError struct{ ResourceType string }

func (e *IdentityError) Error() string {
	return "the server matched a " + e.ResourceType + " that does not carry this identifier exactly (system and value); not written"
}

package fhir

import (
	"context"
	"encoding/json"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/fhir/smart"
	"github.com/switchboard-health/switchboard/internal/secrets"
)

// AuthMethod is how Switchboard authenticates to an endpoint
// (ehr_endpoints.auth_kind). Every method is one row of authMethods: adding
// one is adding a row.
type AuthMethod string

// Auth methods.
const (
	AuthNone   AuthMethod = "none"
	AuthBearer AuthMethod = "bearer"
	// AuthSMART is SMART Backend Services (client credentials with a signed
	// JWT assertion).
	AuthSMART AuthMethod = "smart_backend"
)

// authMethod is what one method needs at each step.
type authMethod struct {
	// flag is its name on the command line (`ehr add --auth`).
	flag string
	// add checks the parameters and stores the method's secrets (sealed) as
	// the endpoint is added.
	add func(ctx context.Context, tx pgx.Tx, keys *secrets.Keyring, p *AddEndpointParams, row *db.EHREndpointInsertParams) error
	// authorizer builds the endpoint's token source.
	authorizer func(ctx context.Context, d Deps, row db.EHREndpoint) (Authorizer, error)
	// publishesKey: the EHR must be given `switchboard ehr jwks`.
	publishesKey bool
}

var authMethods = map[AuthMethod]authMethod{
	AuthNone: {
		flag: "none",
		add: func(context.Context, pgx.Tx, *secrets.Keyring, *AddEndpointParams, *db.EHREndpointInsertParams) error {
			return nil
		},
		authorizer: func(context.Context, Deps, db.EHREndpoint) (Authorizer, error) { return nil, nil },
	},
	AuthBearer: {flag: "bearer", add: addBearer, authorizer: bearerAuthorizer},
	AuthSMART:  {flag: "smart", add: addSMART, authorizer: smartAuthorizer, publishesKey: true},
}

// ParseAuthMethod reads a method by its command-line name (none, bearer,
// smart) or its stored name.
func ParseAuthMethod(s string) (AuthMethod, error) {
	for m, am := range authMethods {
		if s == am.flag || s == string(m) {
			return m, nil
		}
	}
	return "", &InputError{"auth must be " + AuthFlags()}
}

// AuthFlags lists the methods' command-line names ("none, bearer or smart").
func AuthFlags() string {
	var names []string
	for _, am := range authMethods {
		names = append(names, am.flag)
	}
	sort.Strings(names)
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// PublishesKey reports whether the EHR must be given the public key
// (`switchboard ehr jwks`).
func (m AuthMethod) PublishesKey() bool { return authMethods[m].publishesKey }

func addBearer(_ context.Context, _ pgx.Tx, keys *secrets.Keyring, p *AddEndpointParams, row *db.EHREndpointInsertParams) error {
	if p.BearerToken == "" || keys == nil {
		return &InputError{"auth bearer needs --bearer-token (read from the environment) and TOKEN_ENCRYPTION_KEYS"}
	}
	sealed, err := keys.Seal([]byte(p.BearerToken), BearerAAD(p.Name))
	if err != nil {
		return err
	}
	row.BearerTokenSealed = &sealed
	return nil
}

func addSMART(ctx context.Context, tx pgx.Tx, keys *secrets.Keyring, p *AddEndpointParams, row *db.EHREndpointInsertParams) error {
	if p.ClientID == "" || keys == nil {
		return &InputError{"auth smart needs --client-id and TOKEN_ENCRYPTION_KEYS"}
	}
	if p.Alg == "" {
		p.Alg = smart.ES384
	}
	k, err := smart.GenerateKey(p.Alg)
	if err != nil {
		return &InputError{"alg: " + err.Error()}
	}
	der, err := k.MarshalPrivate()
	if err != nil {
		return err
	}
	sealed, err := keys.Seal(der, SigningKeyAAD(k.ID))
	if err != nil {
		return err
	}
	jwk, err := json.Marshal(k.PublicJWK())
	if err != nil {
		return err
	}
	key, err := db.New().EHRSigningKeyInsert(ctx, tx, db.EHRSigningKeyInsertParams{Kid: k.ID, Alg: k.Alg, PrivateKeySealed: sealed, PublicJwk: jwk})
	if err != nil {
		return err
	}
	row.SigningKeyID = &key.ID
	return nil
}

func bearerAuthorizer(_ context.Context, d Deps, row db.EHREndpoint) (Authorizer, error) {
	if d.Keys == nil || row.BearerTokenSealed == nil {
		return nil, &ConfigError{Msg: "bearer token needs TOKEN_ENCRYPTION_KEYS"}
	}
	tok, err := d.Keys.Open(*row.BearerTokenSealed, BearerAAD(row.Name))
	if err != nil {
		return nil, &ConfigError{Msg: "bearer token does not open: " + err.Error()}
	}
	return StaticToken(tok), nil
}

func smartAuthorizer(ctx context.Context, d Deps, row db.EHREndpoint) (Authorizer, error) {
	if d.Keys == nil || row.SigningKeyID == nil || row.ClientID == nil {
		return nil, &ConfigError{Msg: "SMART needs a client id, a signing key and TOKEN_ENCRYPTION_KEYS"}
	}
	k, err := LoadSigningKey(ctx, d, *row.SigningKeyID)
	if err != nil {
		return nil, err
	}
	tokenURL := ""
	if row.TokenUrl != nil {
		tokenURL = *row.TokenUrl
	} else {
		var c Capabilities
		if json.Unmarshal(row.Capabilities, &c) == nil && c.SMART != nil {
			tokenURL = c.SMART.TokenEndpoint
		}
	}
	if tokenURL == "" {
		return nil, &ConfigError{Msg: "no token URL: set one or run `switchboard ehr test` to discover it"}
	}
	var scopes []string
	if row.Scopes != nil {
		scopes = strings.Fields(*row.Scopes)
	}
	return smart.NewSource(smart.Config{ClientID: *row.ClientID, TokenURL: tokenURL, Scopes: scopes, Key: k,
		HTTPClient: d.HTTPClient}), nil
}

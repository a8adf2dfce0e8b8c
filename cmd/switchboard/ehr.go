package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/fhir"
	"github.com/switchboard-health/switchboard/internal/secrets"
)

const ehrUsage = `ehr add|list|show|test|disable|enable|jwks

  add NAME --base-url URL [flags]   register an EHR endpoint (flags below)
  list                              every endpoint: auth, push/pull types, enabled
  show NAME                         one endpoint with its capability summary
  test NAME                         fetch /metadata and .well-known/smart-configuration,
                                    store the capability summary (the client never
                                    uses an interaction the server does not declare)
  disable NAME, enable NAME         stop or resume pushes and pulls to an endpoint
  jwks                              print the public JWKS of the SMART signing keys

Secrets come from the environment, never from flags: the static bearer token
from EHR_BEARER_TOKEN, the rest-hook shared secret from EHR_WEBHOOK_SECRET.
Sealed secrets need TOKEN_ENCRYPTION_KEYS. Every action is written to
switchboard.audit_log with the actor (SWITCHBOARD_ACTOR, else $USER@hostname).

Flags of add:`

type ehrKeys struct {
	TokenEncryptionKeys string `env:"TOKEN_ENCRYPTION_KEYS"`
}

func runEHR(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ehr", ehrUsage, stdout)
	baseURL := fs.String("base-url", "", "FHIR base URL (add)")
	auth := fs.String("auth", "none", "none, bearer or smart (add)")
	clientID := fs.String("client-id", "", "SMART client id (add)")
	tokenURL := fs.String("token-url", "", "SMART token URL; empty: discovered by `ehr test` (add)")
	scopes := fs.String("scopes", "system/Patient.cru system/Observation.cru", "SMART scopes, space-separated (add)")
	alg := fs.String("alg", "ES384", "signing algorithm of the generated SMART key: RS384 or ES384 (add)")
	push := fs.String("push", "Patient,Observation", "resource types pushed: Patient,Observation,Device,Communication,Consent or * (add)")
	pull := fs.String("pull", "", "resource types pulled: Patient,Observation (add)")
	rateLimit := fs.String("rate-limit", "", `rate limit of calls, e.g. "10/s burst 5" (add)`)
	identifierSystem := fs.String("identifier-system", "", "business identifier system; empty: FHIR_IDENTIFIER_SYSTEM (add)")
	includeBody := fs.Bool("include-sms-body", false, "put SMS bodies (PHI) in Communication resources (add)")
	pullInterval := fs.Duration("pull-interval", 5*time.Minute, "how often to poll (add)")
	if len(args) == 0 {
		fs.Usage()
		return usageError{"ehr needs add, list, show, test, disable, enable or jwks"}
	}
	sub := args[0]
	if sub == "-h" || sub == "--help" || sub == "help" {
		fs.Usage()
		return errHelp
	}
	rest := args[1:]
	var name string
	switch sub {
	case "add", "show", "test", "disable", "enable":
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			if len(rest) > 0 && (rest[0] == "-h" || rest[0] == "--help") {
				fs.Usage()
				return errHelp
			}
			return usageError{"ehr " + sub + " needs an endpoint name"}
		}
		name, rest = rest[0], rest[1:]
	case "list", "jwks":
	default:
		fs.Usage()
		return usageError{fmt.Sprintf("unknown ehr command %q", sub)}
	}
	if err := parse(fs, rest); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{"ehr " + sub + ": unexpected argument " + fs.Arg(0)}
	}
	var b base
	var fc fhir.Config
	var ek ehrKeys
	if err := load(ctx, &b, &fc, &ek); err != nil {
		return err
	}
	pool, err := openPool(ctx, b, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	q := db.New()
	switch sub {
	case "add":
		var keys *secrets.Keyring
		if ek.TokenEncryptionKeys != "" {
			if keys, err = secrets.Parse(ek.TokenEncryptionKeys); err != nil {
				return err
			}
		}
		kind := map[string]string{"none": "none", "bearer": "bearer", "smart": "smart_backend"}[*auth]
		if kind == "" {
			return usageError{"--auth must be none, bearer or smart"}
		}
		p := fhir.AddEndpointParams{Name: name, BaseURL: *baseURL, AuthKind: kind, BearerToken: os.Getenv("EHR_BEARER_TOKEN"),
			ClientID: *clientID, TokenURL: *tokenURL, Alg: *alg, PushTypes: splitList(*push), PullTypes: splitList(*pull),
			RateLimit: *rateLimit, IdentifierSystem: *identifierSystem, IncludeSMSBody: *includeBody,
			WebhookSecret: os.Getenv("EHR_WEBHOOK_SECRET"), PullInterval: *pullInterval}
		if kind == "smart_backend" {
			p.Scopes = *scopes
		}
		ep, err := fhir.AddEndpoint(ctx, pool, keys, p, actor())
		if err != nil {
			return ehrError(err)
		}
		fmt.Fprintf(stdout, "added ehr endpoint %s (id %d)\n", ep.Name, ep.ID)
		if ep.AuthKind == "smart_backend" {
			fmt.Fprintln(stdout, "register the public key with the EHR: switchboard ehr jwks")
		}
		return nil
	case "list":
		rows, err := q.EHREndpointList(ctx, pool)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tBASE URL\tAUTH\tPUSH\tPULL\tENABLED\tTESTED")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%s\n", r.Name, r.BaseUrl, r.AuthKind, strings.Join(r.PushTypes, ","),
				strings.Join(r.PullTypes, ","), r.Enabled, fmtTime(r.CapabilitiesAt))
		}
		return tw.Flush()
	case "show":
		r, err := q.EHREndpointGetByName(ctx, pool, name)
		if errors.Is(err, pgx.ErrNoRows) {
			return usageError{"no EHR endpoint named " + name}
		} else if err != nil {
			return err
		}
		out := map[string]any{"id": r.ID, "name": r.Name, "base_url": r.BaseUrl, "auth": r.AuthKind, "client_id": r.ClientID,
			"token_url": r.TokenUrl, "scopes": r.Scopes, "push_types": r.PushTypes, "pull_types": r.PullTypes, "rate_limit": r.RateLimit,
			"identifier_system": r.IdentifierSystem, "include_sms_body": r.IncludeSmsBody, "enabled": r.Enabled,
			"webhook_secret_set": len(r.WebhookSecretHash) > 0, "capabilities_at": r.CapabilitiesAt,
			"capabilities": json.RawMessage(orNull(r.Capabilities))}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	case "test":
		caps, err := fhir.TestEndpoint(ctx, pool, nil, name, actor())
		if err != nil {
			return ehrError(err)
		}
		fmt.Fprintf(stdout, "%s: FHIR %s, %d resource types", name, caps.FHIRVersion, len(caps.Resources))
		if caps.SMART != nil {
			fmt.Fprintf(stdout, ", SMART token endpoint %s", caps.SMART.TokenEndpoint)
		}
		fmt.Fprintln(stdout)
		return nil
	case "disable", "enable":
		if err := fhir.SetEnabled(ctx, pool, name, sub == "enable", actor()); err != nil {
			return ehrError(err)
		}
		fmt.Fprintf(stdout, "%sd ehr endpoint %s\n", sub, name)
		return nil
	case "jwks":
		b, err := fhir.PublicJWKS(ctx, pool)
		if err != nil {
			return err
		}
		_ = q.AuditInsert(ctx, pool, db.AuditInsertParams{Actor: actor(), Action: "ehr.jwks", TargetType: "ehr_signing_keys", TargetID: "*", Detail: []byte(`{}`)})
		fmt.Fprintln(stdout, string(b))
		return nil
	}
	return nil
}

func orNull(b []byte) []byte {
	if len(b) == 0 {
		return []byte("null")
	}
	return b
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ehrError shows bad input as a usage error in one line.
func ehrError(err error) error {
	var ie *fhir.InputError
	if errors.As(err, &ie) {
		return usageError{ie.Msg}
	}
	if e := sqlUserError(err); e != err {
		return e
	}
	return fmt.Errorf("%s", strings.ReplaceAll(err.Error(), "\n", " "))
}

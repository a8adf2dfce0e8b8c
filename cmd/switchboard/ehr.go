package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/fhir"
	"github.com/switchboard-health/switchboard/internal/secrets"
)

// ehrCmd is `switchboard ehr`.
type ehrCmd struct {
	Add     ehrAddCmd     `cmd:"" help:"Register an EHR endpoint."`
	List    ehrListCmd    `cmd:"" help:"Every endpoint: auth, push/pull types, enabled."`
	Show    ehrShowCmd    `cmd:"" help:"One endpoint with its capability summary (JSON)."`
	Test    ehrTestCmd    `cmd:"" help:"Fetch /metadata and .well-known/smart-configuration and store the capability summary."`
	Check   ehrCheckCmd   `cmd:"" help:"Report what the endpoint supports and what Switchboard does differently because of it; stores the write plan."`
	Disable ehrDisableCmd `cmd:"" help:"Stop pushes and pulls to an endpoint."`
	Enable  ehrEnableCmd  `cmd:"" help:"Resume pushes and pulls to an endpoint."`
	JWKS    ehrJWKSCmd    `cmd:"" name:"jwks" help:"Print the public JWKS of the SMART signing keys."`
}

func (ehrCmd) Help() string {
	return `The client never uses an interaction the server does not declare (ehr test
stores what it declares). Secrets come from the environment, never from flags:
the static bearer token from EHR_BEARER_TOKEN, the rest-hook shared secret
from EHR_WEBHOOK_SECRET. Sealed secrets need TOKEN_ENCRYPTION_KEYS. Every
action is written to switchboard.audit_log with the actor (SWITCHBOARD_ACTOR,
else $USER@hostname).`
}

type ehrKeys struct {
	TokenEncryptionKeys string `env:"TOKEN_ENCRYPTION_KEYS"`
}

// ehrPool reads the configuration the ehr commands share and opens a pool.
func ehrPool(e *env) (*pgxpool.Pool, ehrKeys, error) {
	var b base
	var fc fhir.Config
	var ek ehrKeys
	if err := load(e.ctx, &b, &fc, &ek); err != nil {
		return nil, ek, err
	}
	pool, err := openPool(e.ctx, b, 2)
	return pool, ek, err
}

type ehrAddCmd struct {
	Name             string        `arg:"" help:"Endpoint name: lowercase letters, digits, -."`
	BaseURL          string        `name:"base-url" required:"" help:"FHIR base URL."`
	Auth             string        `default:"none" enum:"none,bearer,smart" help:"${enum}."`
	ClientID         string        `name:"client-id" help:"SMART client id."`
	TokenURL         string        `name:"token-url" help:"SMART token URL; empty: discovered by 'ehr test'."`
	Scopes           string        `default:"system/Patient.cru system/Observation.cru" help:"SMART scopes, space-separated."`
	Alg              string        `default:"ES384" enum:"RS384,ES384" help:"Signing algorithm of the generated SMART key: ${enum}."`
	Push             string        `default:"Patient,Observation" help:"Resource types pushed: Patient,Observation,Device,Communication,Consent or *."`
	Pull             string        `help:"Resource types pulled: Patient,Observation."`
	RateLimit        string        `name:"rate-limit" help:"Rate limit of calls, e.g. \"10/s burst 5\"."`
	IdentifierSystem string        `name:"identifier-system" help:"Business identifier system; empty: FHIR_IDENTIFIER_SYSTEM."`
	IncludeSMSBody   bool          `name:"include-sms-body" help:"Put SMS bodies (PHI) in Communication resources."`
	PullInterval     time.Duration `name:"pull-interval" default:"5m" help:"How often to poll."`
}

func (c *ehrAddCmd) Run(e *env) error {
	pool, ek, err := ehrPool(e)
	if err != nil {
		return err
	}
	defer pool.Close()
	var keys *secrets.Keyring
	if ek.TokenEncryptionKeys != "" {
		if keys, err = secrets.Parse(ek.TokenEncryptionKeys); err != nil {
			return usageError{msg: "TOKEN_ENCRYPTION_KEYS: " + err.Error()}
		}
	}
	kind, err := fhir.ParseAuthMethod(c.Auth)
	if err != nil {
		return ehrError(err)
	}
	p := fhir.AddEndpointParams{Name: c.Name, BaseURL: c.BaseURL, AuthKind: kind, BearerToken: os.Getenv("EHR_BEARER_TOKEN"),
		ClientID: c.ClientID, TokenURL: c.TokenURL, Alg: c.Alg, PushTypes: splitList(c.Push), PullTypes: splitList(c.Pull),
		RateLimit: c.RateLimit, IdentifierSystem: c.IdentifierSystem, IncludeSMSBody: c.IncludeSMSBody,
		WebhookSecret: os.Getenv("EHR_WEBHOOK_SECRET"), PullInterval: c.PullInterval}
	if kind == fhir.AuthSMART {
		p.Scopes = c.Scopes
	}
	ep, err := fhir.AddEndpoint(e.ctx, pool, keys, p, actor())
	if err != nil {
		return ehrError(err)
	}
	fmt.Fprintf(e.stdout, "added ehr endpoint %s (id %d)\n", ep.Name, ep.ID)
	if fhir.AuthMethod(ep.AuthKind).PublishesKey() {
		fmt.Fprintln(e.stdout, "register the public key with the EHR: switchboard ehr jwks")
	}
	return nil
}

type ehrListCmd struct{}

func (ehrListCmd) Run(e *env) error {
	pool, _, err := ehrPool(e)
	if err != nil {
		return err
	}
	defer pool.Close()
	rows, err := db.New().EHREndpointList(e.ctx, pool)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tBASE URL\tAUTH\tPUSH\tPULL\tENABLED\tTESTED")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%s\n", r.Name, r.BaseUrl, r.AuthKind, strings.Join(r.PushTypes, ","),
			strings.Join(r.PullTypes, ","), r.Enabled, fmtTime(r.CapabilitiesAt))
	}
	return tw.Flush()
}

type ehrShowCmd struct {
	Name string `arg:"" help:"Endpoint name."`
}

func (c *ehrShowCmd) Run(e *env) error {
	pool, _, err := ehrPool(e)
	if err != nil {
		return err
	}
	defer pool.Close()
	r, err := db.New().EHREndpointGetByName(e.ctx, pool, c.Name)
	if errors.Is(err, pgx.ErrNoRows) {
		return usageError{msg: "no EHR endpoint named " + c.Name}
	} else if err != nil {
		return err
	}
	out := map[string]any{"id": r.ID, "name": r.Name, "base_url": r.BaseUrl, "auth": r.AuthKind, "client_id": r.ClientID,
		"token_url": r.TokenUrl, "scopes": r.Scopes, "push_types": r.PushTypes, "pull_types": r.PullTypes, "rate_limit": r.RateLimit,
		"identifier_system": r.IdentifierSystem, "include_sms_body": r.IncludeSmsBody, "enabled": r.Enabled,
		"webhook_secret_set": len(r.WebhookSecretHash) > 0, "capabilities_at": r.CapabilitiesAt,
		"capabilities": json.RawMessage(orNull(r.Capabilities))}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

type ehrTestCmd struct {
	Name string `arg:"" help:"Endpoint name."`
}

func (c *ehrTestCmd) Run(e *env) error {
	pool, _, err := ehrPool(e)
	if err != nil {
		return err
	}
	defer pool.Close()
	caps, err := fhir.TestEndpoint(e.ctx, pool, nil, c.Name, actor())
	if err != nil {
		return ehrError(err)
	}
	fmt.Fprintf(e.stdout, "%s: FHIR %s, %d resource types", c.Name, caps.FHIRVersion, len(caps.Resources))
	if caps.SMART != nil {
		fmt.Fprintf(e.stdout, ", SMART token endpoint %s", caps.SMART.TokenEndpoint)
	}
	fmt.Fprintln(e.stdout)
	return nil
}

type ehrDisableCmd struct {
	Name string `arg:"" help:"Endpoint name."`
	Drop bool   `help:"Retire the endpoint: its held pushes become dead letters and no more are queued (audited). Without it, pushes are held until enable."`
}

func (c *ehrDisableCmd) Run(e *env) error {
	if !c.Drop {
		return setEHREnabled(e, c.Name, false)
	}
	pool, _, err := ehrPool(e)
	if err != nil {
		return err
	}
	defer pool.Close()
	n, err := fhir.DropEndpoint(e.ctx, pool, c.Name, actor())
	if err != nil {
		return ehrError(err)
	}
	fmt.Fprintf(e.stdout, "retired ehr endpoint %s: %d held pushes dropped\n", c.Name, n)
	return nil
}

type ehrCheckCmd struct {
	Name string `arg:"" help:"Endpoint name."`
}

func (c *ehrCheckCmd) Run(e *env) error {
	pool, _, err := ehrPool(e)
	if err != nil {
		return err
	}
	defer pool.Close()
	r, err := fhir.CheckEndpoint(e.ctx, pool, nil, c.Name, actor())
	if err != nil {
		return ehrError(err)
	}
	fmt.Fprintf(e.stdout, "%s: FHIR %s %s\n", r.Endpoint, r.FHIRVersion, r.Software)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tDECLARED\tCOND CREATE\tCOND UPDATE\tPATCH\t_lastUpdated\tPROFILES")
	for _, t := range r.Resources {
		fmt.Fprintf(tw, "%s\t%t\t%t\t%t\t%t\t%t\t%s\n", t.Type, t.Declared, t.ConditionalCreate, t.ConditionalUpdate, t.Patch, t.LastUpdated,
			strings.Join(t.Profiles, " "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "transaction: %t, subscriptions: %t, SMART: %t, updates: %s\n", r.Transaction, r.Subscriptions, r.SMART, r.Plan.Update)
	for _, s := range r.Consequences {
		fmt.Fprintln(e.stdout, "- "+s)
	}
	return nil
}

type ehrEnableCmd struct {
	Name string `arg:"" help:"Endpoint name."`
}

func (c *ehrEnableCmd) Run(e *env) error { return setEHREnabled(e, c.Name, true) }

func setEHREnabled(e *env, name string, enabled bool) error {
	pool, _, err := ehrPool(e)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := fhir.SetEnabled(e.ctx, pool, name, enabled, actor()); err != nil {
		return ehrError(err)
	}
	if enabled {
		fmt.Fprintf(e.stdout, "enabled ehr endpoint %s\n", name)
	} else {
		fmt.Fprintf(e.stdout, "disabled ehr endpoint %s\n", name)
	}
	return nil
}

type ehrJWKSCmd struct{}

func (ehrJWKSCmd) Run(e *env) error {
	pool, _, err := ehrPool(e)
	if err != nil {
		return err
	}
	defer pool.Close()
	b, err := fhir.PublicJWKS(e.ctx, pool)
	if err != nil {
		return err
	}
	_ = db.New().AuditInsert(e.ctx, pool, db.AuditInsertParams{Actor: actor(), Action: "ehr.jwks", TargetType: "ehr_signing_keys", TargetID: "*", Detail: []byte(`{}`)})
	fmt.Fprintln(e.stdout, string(b))
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
		return usageError{msg: ie.Msg}
	}
	if e := sqlUserError(err); e != err {
		return e
	}
	return fmt.Errorf("%s", strings.ReplaceAll(err.Error(), "\n", " "))
}

package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/jobs"
)

// wearablesCmd is `switchboard wearables`.
type wearablesCmd struct {
	Link       wearablesLinkCmd       `cmd:"" help:"Print a connect link (Google Health) for one patient; PUBLIC_BASE_URL is its base."`
	Token      wearablesTokenCmd      `cmd:"" help:"Issue an Apple Health upload token for one patient (shown once; stored hashed)."`
	List       wearablesListCmd       `cmd:"" help:"Connections with status, last sync and failures."`
	Disconnect wearablesDisconnectCmd `cmd:"" help:"Revoke a connection (its Google token is revoked by a job); audited."`
}

func (wearablesCmd) Help() string {
	return `Disconnect is audited with the actor (SWITCHBOARD_ACTOR, else $USER@hostname).`
}

type wearablesLinkCmd struct {
	Patient string        `required:"" help:"The app's patient reference (external_ref)."`
	TTL     time.Duration `name:"ttl" default:"30m" help:"How long the link works."`
}

func (c *wearablesLinkCmd) Run(e *env) error {
	var cfg struct {
		Base          base
		PublicBaseURL string `env:"PUBLIC_BASE_URL"`
	}
	if err := load(e.ctx, &cfg); err != nil {
		return err
	}
	if cfg.PublicBaseURL == "" {
		return usageError{msg: "PUBLIC_BASE_URL is not set"}
	}
	pool, err := openPool(e.ctx, cfg.Base, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	var tok string
	if err := pgx.BeginFunc(e.ctx, pool, func(tx pgx.Tx) error {
		tok, err = jobs.WearablesConnectLink(e.ctx, tx, c.Patient, c.TTL)
		return err
	}); err != nil {
		return sqlUserError(err)
	}
	fmt.Fprintf(e.stdout, "%s/oauth/google-health/start?link=%s\n", trimSlash(cfg.PublicBaseURL), tok)
	return nil
}

type wearablesTokenCmd struct {
	Patient string `required:"" help:"The app's patient reference (external_ref)."`
}

func (c *wearablesTokenCmd) Run(e *env) error {
	pool, err := openBasePool(e)
	if err != nil {
		return err
	}
	defer pool.Close()
	var tok string
	if err := pgx.BeginFunc(e.ctx, pool, func(tx pgx.Tx) error {
		tok, err = jobs.WearablesUploadToken(e.ctx, tx, c.Patient)
		return err
	}); err != nil {
		return sqlUserError(err)
	}
	fmt.Fprintln(e.stdout, tok)
	return nil
}

type wearablesListCmd struct {
	Patient string `help:"Only this patient's connections."`
}

func (c *wearablesListCmd) Run(e *env) error {
	pool, err := openBasePool(e)
	if err != nil {
		return err
	}
	defer pool.Close()
	var ref *string
	if c.Patient != "" {
		ref = &c.Patient
	}
	rows, err := db.New().ConnectionList(e.ctx, pool, ref)
	if err != nil {
		return fmt.Errorf("error listing connections: %w", err)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPATIENT\tPROVIDER\tSTATUS\tREASON\tLAST SYNC\tLAST DATA\tSTALE SINCE\tFAILURES\tLAST ERROR")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, r.ExternalRef, r.Provider, r.Status, deref(r.StatusReason),
			fmtTime(r.LastSyncAt), fmtTime(r.LastDataAt), fmtTime(r.StaleSince), r.ConsecutiveFailures, deref(r.LastErrorClass))
	}
	return tw.Flush()
}

type wearablesDisconnectCmd struct {
	ID int64 `arg:"" help:"Connection id (see 'switchboard wearables list')."`
}

func (c *wearablesDisconnectCmd) Validate() error {
	if c.ID <= 0 {
		return fmt.Errorf("connection id must be a positive number")
	}
	return nil
}

func (c *wearablesDisconnectCmd) Run(e *env) error {
	pool, err := openBasePool(e)
	if err != nil {
		return err
	}
	defer pool.Close()
	return disconnect(e, pool, c.ID)
}

func disconnect(e *env, pool *pgxpool.Pool, id int64) error {
	var done bool
	err := pgx.BeginFunc(e.ctx, pool, func(tx pgx.Tx) error {
		var err error
		done, err = jobs.WearablesDisconnect(e.ctx, tx, id, actor())
		return err
	})
	if err != nil {
		return sqlUserError(err)
	}
	if done {
		fmt.Fprintf(e.stdout, "connection %d disconnected\n", id)
	} else {
		fmt.Fprintf(e.stdout, "connection %d was already disconnected\n", id)
	}
	return nil
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

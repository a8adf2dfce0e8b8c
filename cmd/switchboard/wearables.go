package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/jobs"
)

const wearablesUsage = `wearables link|token|list|disconnect

  link --patient REF [--ttl 30m]   print a connect link (Google Health) for one patient;
                                   it works until the ttl passes (PUBLIC_BASE_URL is its base)
  token --patient REF              issue an Apple Health upload token for one patient
                                   (shown once; stored hashed)
  list [--patient REF]             connections with status, last sync and failures
  disconnect ID                    revoke a connection (its Google token is revoked by a job);
                                   audited with the actor (SWITCHBOARD_ACTOR, else $USER@hostname)`

func runWearables(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("wearables", wearablesUsage, stdout)
	patient := fs.String("patient", "", "the app's patient reference (external_ref)")
	ttl := fs.Duration("ttl", 30*time.Minute, "how long a connect link works")
	if len(args) == 0 {
		fs.Usage()
		return usageError{"wearables needs link, token, list or disconnect"}
	}
	sub := args[0]
	if sub == "-h" || sub == "--help" || sub == "help" {
		fs.Usage()
		return errHelp
	}
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	switch sub {
	case "link", "token":
		if *patient == "" || fs.NArg() != 0 {
			return usageError{"wearables " + sub + " needs --patient REF and no other argument"}
		}
	case "list":
		if fs.NArg() != 0 {
			return usageError{"wearables list takes no arguments"}
		}
	case "disconnect":
		if fs.NArg() != 1 {
			return usageError{"wearables disconnect takes exactly one connection id"}
		}
		if _, err := strconv.ParseInt(fs.Arg(0), 10, 64); err != nil {
			return usageError{"wearables disconnect: connection id must be a number"}
		}
	default:
		fs.Usage()
		return usageError{fmt.Sprintf("unknown wearables command %q", sub)}
	}
	var cfg struct {
		Base          base
		PublicBaseURL string `env:"PUBLIC_BASE_URL"`
	}
	if err := load(ctx, &cfg); err != nil {
		return err
	}
	pool, err := openPool(ctx, cfg.Base, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	switch sub {
	case "link":
		if cfg.PublicBaseURL == "" {
			return usageError{"PUBLIC_BASE_URL is not set"}
		}
		var tok string
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			tok, err = jobs.WearablesConnectLink(ctx, tx, *patient, *ttl)
			return err
		}); err != nil {
			return sqlUserError(err)
		}
		fmt.Fprintf(stdout, "%s/oauth/google-health/start?link=%s\n", trimSlash(cfg.PublicBaseURL), tok)
	case "token":
		var tok string
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			tok, err = jobs.WearablesUploadToken(ctx, tx, *patient)
			return err
		}); err != nil {
			return sqlUserError(err)
		}
		fmt.Fprintln(stdout, tok)
	case "list":
		var ref *string
		if *patient != "" {
			ref = patient
		}
		rows, err := db.New().ConnectionList(ctx, pool, ref)
		if err != nil {
			return fmt.Errorf("error listing connections: %w", err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPATIENT\tPROVIDER\tSTATUS\tREASON\tLAST SYNC\tLAST DATA\tSTALE SINCE\tFAILURES\tLAST ERROR")
		for _, r := range rows {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, r.ExternalRef, r.Provider, r.Status, deref(r.StatusReason),
				fmtTime(r.LastSyncAt), fmtTime(r.LastDataAt), fmtTime(r.StaleSince), r.ConsecutiveFailures, deref(r.LastErrorClass))
		}
		return tw.Flush()
	case "disconnect":
		id, _ := strconv.ParseInt(fs.Arg(0), 10, 64)
		var done bool
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			done, err = jobs.WearablesDisconnect(ctx, tx, id, actor())
			return err
		}); err != nil {
			return sqlUserError(err)
		}
		if done {
			fmt.Fprintf(stdout, "connection %d disconnected\n", id)
		} else {
			fmt.Fprintf(stdout, "connection %d was already disconnected\n", id)
		}
	}
	return nil
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/switchboard-health/switchboard/db"
)

const destinationUsage = `destination list|pause|resume

  list           every destination's health as workers last recorded it
  pause NAME     stop calls to one destination: its jobs snooze (no attempts
                 spent) until resumed; other destinations are untouched
  resume NAME    allow calls again

Workers pick a pause up within seconds. Pause and resume are written to
switchboard.audit_log with the actor (SWITCHBOARD_ACTOR, else $USER@hostname).`

func runDestination(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("destination", destinationUsage, stdout)
	if len(args) == 0 {
		fs.Usage()
		return usageError{"destination needs list, pause or resume"}
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
	case "list":
		if fs.NArg() != 0 {
			return usageError{"destination list takes no arguments"}
		}
	case "pause", "resume":
		if fs.NArg() != 1 {
			return usageError{"destination " + sub + " takes exactly one destination name"}
		}
	default:
		fs.Usage()
		return usageError{fmt.Sprintf("unknown destination command %q", sub)}
	}
	var b base
	if err := load(ctx, &b); err != nil {
		return err
	}
	pool, err := openPool(ctx, b, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	q := db.New()
	if sub == "list" {
		rows, err := q.DestinationHealthList(ctx, pool)
		if err != nil {
			return fmt.Errorf("error reading destination health: %w", err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DESTINATION\tBREAKER\tPAUSED\tLAST SUCCESS\tLAST FAILURE\tCLASS\tFAILURES IN A ROW")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\t%d\n", r.Destination, r.BreakerState, r.Paused,
				fmtTime(r.LastSuccessAt), fmtTime(r.LastFailureAt), deref(r.LastFailureClass), r.ConsecutiveFailures)
		}
		return tw.Flush()
	}
	name := fs.Arg(0)
	if err := q.DestinationSetPaused(ctx, pool, db.DestinationSetPausedParams{Destination: name, Paused: sub == "pause", Actor: actor()}); err != nil {
		return sqlUserError(err)
	}
	fmt.Fprintf(stdout, "destination %s %sd\n", name, sub)
	return nil
}

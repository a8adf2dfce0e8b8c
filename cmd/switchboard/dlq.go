package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/switchboard-health/switchboard/internal/deadletter"
)

const dlqUsage = `dlq list|show|retry|purge

  list [--state open|requeued|purged] [--kind KIND] [--limit N]
  show ID
  retry ID...          requeue as fresh jobs
  retry --kind K [--class C] [--since T]
                       requeue every open dead letter matching (after an outage:
                       --class unavailable or retries_exhausted); T is RFC 3339 or a
                       duration back from now (90m)
  purge ID... --yes    mark purged (kept for the record)

Every action is written to switchboard.audit_log with the actor
(SWITCHBOARD_ACTOR, else $USER@hostname).`

func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	help := newFlags("dlq", dlqUsage, stdout)
	if len(args) == 0 {
		help.Usage()
		return usageError{"dlq needs list, show, retry or purge"}
	}
	sub, rest := args[0], args[1:]
	if sub == "-h" || sub == "--help" || sub == "help" {
		help.Usage()
		return errHelp
	}
	fs := newFlags("dlq "+sub, dlqUsage, stdout)
	state := fs.String("state", "open", "list: dead letters in this state (empty for all)")
	kind := fs.String("kind", "", "list: only this job kind")
	limit := fs.Int("limit", 100, "list: at most this many rows")
	yes := fs.Bool("yes", false, "purge: confirm")
	class := fs.String("class", "", "retry: bulk, only this class")
	since := fs.String("since", "", "retry: bulk, only dead letters created since (RFC 3339 or a duration like 90m)")
	if err := parse(fs, rest); err != nil {
		return err
	}
	var ids []int64
	for _, a := range fs.Args() {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil || id <= 0 {
			return usageError{fmt.Sprintf("%q is not a dead letter id", a)}
		}
		ids = append(ids, id)
	}
	switch sub {
	case "list":
	case "show":
		if len(ids) != 1 {
			return usageError{"dlq show takes exactly one id"}
		}
	case "retry", "purge":
		bulk := sub == "retry" && (*kind != "" || *class != "" || *since != "")
		if bulk && len(ids) > 0 {
			return usageError{"dlq retry takes ids or --kind/--class/--since, not both"}
		}
		if len(ids) == 0 && !bulk {
			return usageError{"dlq " + sub + " needs at least one id"}
		}
		if sub == "purge" && !*yes {
			return usageError{"dlq purge needs --yes"}
		}
	default:
		help.Usage()
		return usageError{fmt.Sprintf("unknown dlq command %q", sub)}
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
	who := actor()

	switch sub {
	case "list":
		rows, err := deadletter.List(ctx, pool, deadletter.Filter{State: *state, Kind: *kind, Limit: int32(*limit)}, who)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tKIND\tCLASS\tJOB\tATTEMPTS\tSUBJECT\tCREATED")
		for _, r := range rows {
			subject := ""
			if r.Subject != nil {
				subject = *r.Subject
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", r.ID, r.State, r.Kind, r.Class, r.JobID, r.Attempts, subject,
				r.CreatedAt.UTC().Format("2006-01-02 15:04:05"))
		}
		return tw.Flush()
	case "show":
		dl, err := deadletter.Show(ctx, pool, ids[0], who)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{
			"id": dl.ID, "job_id": dl.JobID, "kind": dl.Kind, "queue": dl.Queue, "class": dl.Class,
			"job_state": dl.JobState, "subject": dl.Subject, "state": dl.State, "attempts": dl.Attempts,
			"max_attempts": dl.MaxAttempts, "args": dl.Args, "errors": dl.Errors,
			"requeued_job_id": dl.RequeuedJobID, "created_at": dl.CreatedAt, "updated_at": dl.UpdatedAt,
		})
	case "retry":
		if len(ids) == 0 {
			var from time.Time
			if *since != "" {
				t, err := parseSince(*since, time.Now())
				if err != nil {
					return err
				}
				from = t
			}
			n, err := deadletter.RetryWhere(ctx, pool, deadletter.Filter{Kind: *kind, Class: *class, Since: from}, who)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "requeued %d dead letter(s)\n", n)
			return nil
		}
		jobIDs, err := deadletter.Retry(ctx, pool, ids, who)
		if err != nil {
			return err
		}
		for i, id := range ids {
			fmt.Fprintf(stdout, "dead letter %d requeued as job %d\n", id, jobIDs[i])
		}
	case "purge":
		n, err := deadletter.Purge(ctx, pool, ids, who)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "purged %d dead letter(s)\n", n)
	}
	return nil
}

// parseSince reads an RFC 3339 time or a duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usageError{fmt.Sprintf("--since %q is neither an RFC 3339 time nor a duration like 90m", s)}
}

package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchboard-health/switchboard/db"
	"github.com/switchboard-health/switchboard/internal/deadletter"
)

// dlqCmd is `switchboard dlq`.
type dlqCmd struct {
	List  dlqListCmd  `cmd:"" help:"Dead letters, newest first."`
	Show  dlqShowCmd  `cmd:"" help:"One dead letter with its args and errors (JSON)."`
	Retry dlqRetryCmd `cmd:"" help:"Requeue dead letters as fresh jobs: by id, or every open one matching --kind/--class/--since."`
	Purge dlqPurgeCmd `cmd:"" help:"Mark dead letters purged (kept for the record); needs --yes."`
}

func (dlqCmd) Help() string {
	return `Every action, listing included, is written to switchboard.audit_log with the
actor (SWITCHBOARD_ACTOR, else $USER@hostname).`
}

type dlqListCmd struct {
	State string `default:"open" enum:"${dlq_states}" help:"Only dead letters in this state: ${enum}."`
	Kind  string `help:"Only this job kind (see switchboard.job_kinds)."`
	Limit int    `default:"100" help:"At most this many rows (1–10000)."`
}

func (c *dlqListCmd) Validate() error {
	if c.Limit < 1 || c.Limit > 10000 {
		return fmt.Errorf("--limit must be between 1 and 10000, not %d", c.Limit)
	}
	return nil
}

func (c *dlqListCmd) Run(e *env) error {
	pool, err := openBasePool(e)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := checkKind(e, pool, c.Kind); err != nil {
		return err
	}
	state := c.State
	if state == "all" {
		state = ""
	}
	rows, err := deadletter.List(e.ctx, pool, deadletter.Filter{State: state, Kind: c.Kind, Limit: int32(c.Limit)}, actor())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tKIND\tCLASS\tJOB\tATTEMPTS\tSUBJECT\tCREATED")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", r.ID, r.State, r.Kind, r.Class, r.JobID, r.Attempts, deref(r.Subject),
			r.CreatedAt.UTC().Format("2006-01-02 15:04:05"))
	}
	return tw.Flush()
}

type dlqShowCmd struct {
	ID int64 `arg:"" help:"Dead letter id."`
}

func (c *dlqShowCmd) Validate() error { return positiveIDs(c.ID) }

func (c *dlqShowCmd) Run(e *env) error {
	pool, err := openBasePool(e)
	if err != nil {
		return err
	}
	defer pool.Close()
	dl, err := deadletter.Show(e.ctx, pool, c.ID, actor())
	if err != nil {
		return err
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{
		"id": dl.ID, "job_id": dl.JobID, "kind": dl.Kind, "queue": dl.Queue, "class": dl.Class,
		"job_state": dl.JobState, "subject": dl.Subject, "state": dl.State, "attempts": dl.Attempts,
		"max_attempts": dl.MaxAttempts, "args": dl.Args, "errors": dl.Errors,
		"requeued_job_id": dl.RequeuedJobID, "created_at": dl.CreatedAt, "updated_at": dl.UpdatedAt,
	})
}

type dlqRetryCmd struct {
	IDs   []int64 `arg:"" optional:"" name:"id" help:"Dead letter ids (or use the filters)."`
	Kind  string  `help:"Bulk: every open dead letter of this job kind."`
	Class string  `help:"Bulk: only this class (${dlq_classes}); after an outage: unavailable or retries_exhausted."`
	Since string  `help:"Bulk: only dead letters created since T: RFC 3339 or a duration back from now (90m)."`

	from time.Time // Since as parsed by Validate
}

func (c *dlqRetryCmd) Validate() error {
	bulk := c.Kind != "" || c.Class != "" || c.Since != ""
	switch {
	case bulk && len(c.IDs) > 0:
		return fmt.Errorf("give ids or --kind/--class/--since, not both")
	case !bulk && len(c.IDs) == 0:
		return fmt.Errorf("give at least one id, or --kind/--class/--since")
	}
	if c.Class != "" && !slices.Contains(deadletter.Classes(), c.Class) {
		return fmt.Errorf("--class %q is not a dead-letter class; classes: %s", c.Class, strings.Join(deadletter.Classes(), ", "))
	}
	if c.Since != "" {
		var err error
		if c.from, err = parseSince(c.Since, time.Now()); err != nil {
			return err
		}
	}
	return positiveIDs(c.IDs...)
}

func (c *dlqRetryCmd) Run(e *env) error {
	pool, err := openBasePool(e)
	if err != nil {
		return err
	}
	defer pool.Close()
	who := actor()
	if len(c.IDs) > 0 {
		jobIDs, err := deadletter.Retry(e.ctx, pool, c.IDs, who)
		if err != nil {
			return err
		}
		for i, id := range c.IDs {
			fmt.Fprintf(e.stdout, "dead letter %d requeued as job %d\n", id, jobIDs[i])
		}
		return nil
	}
	if err := checkKind(e, pool, c.Kind); err != nil {
		return err
	}
	n, err := deadletter.RetryWhere(e.ctx, pool, deadletter.Filter{Kind: c.Kind, Class: c.Class, Since: c.from}, who)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "requeued %d dead letter(s)\n", n)
	return nil
}

type dlqPurgeCmd struct {
	IDs []int64 `arg:"" name:"id" help:"Dead letter ids."`
	Yes bool    `help:"Confirm the purge."`
}

func (c *dlqPurgeCmd) Validate() error {
	if !c.Yes {
		return fmt.Errorf("--yes is required to purge")
	}
	return positiveIDs(c.IDs...)
}

func (c *dlqPurgeCmd) Run(e *env) error {
	pool, err := openBasePool(e)
	if err != nil {
		return err
	}
	defer pool.Close()
	n, err := deadletter.Purge(e.ctx, pool, c.IDs, actor())
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "purged %d dead letter(s)\n", n)
	return nil
}

func positiveIDs(ids ...int64) error {
	for _, id := range ids {
		if id <= 0 {
			return fmt.Errorf("%d is not a dead letter id (ids are positive)", id)
		}
	}
	return nil
}

// checkKind refuses a job kind that switchboard.job_kinds does not list,
// naming the ones it does.
func checkKind(e *env, pool *pgxpool.Pool, kind string) error {
	if kind == "" {
		return nil
	}
	rows, err := db.New().JobKindList(e.ctx, pool)
	if err != nil {
		return fmt.Errorf("error reading job kinds: %w", err)
	}
	var kinds []string
	for _, k := range rows {
		kinds = append(kinds, k.Kind)
	}
	slices.Sort(kinds)
	if !slices.Contains(kinds, kind) {
		return usageError{msg: fmt.Sprintf("--kind %q is not a job kind; kinds: %s", kind, strings.Join(kinds, ", "))}
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
	return time.Time{}, usageError{msg: fmt.Sprintf("--since %q is neither an RFC 3339 time nor a duration like 90m", s)}
}

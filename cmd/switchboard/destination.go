package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/switchboard-health/switchboard/db"
)

// destinationCmd is `switchboard destination`.
type destinationCmd struct {
	List   destinationListCmd   `cmd:"" help:"Every destination's health as workers last recorded it."`
	Pause  destinationPauseCmd  `cmd:"" help:"Stop calls to one destination: its jobs snooze (no attempts spent) until resumed."`
	Resume destinationResumeCmd `cmd:"" help:"Allow calls to one destination again."`
}

func (destinationCmd) Help() string {
	return `Workers pick a pause up within seconds. A name that is not a destination
(a vendor such as twilio, telnyx, google_health, an EHR endpoint ehr:NAME, or
one a worker has called) is refused with the list of known ones. Pause and
resume are written to switchboard.audit_log with the actor (SWITCHBOARD_ACTOR,
else $USER@hostname).`
}

type destinationListCmd struct{}

func (c *destinationListCmd) Run(e *env) error {
	pool, err := openBasePool(e)
	if err != nil {
		return err
	}
	defer pool.Close()
	rows, err := db.New().DestinationHealthList(e.ctx, pool)
	if err != nil {
		return fmt.Errorf("error reading destination health: %w", err)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DESTINATION\tBREAKER\tPAUSED\tLAST SUCCESS\tLAST FAILURE\tCLASS\tFAILURES IN A ROW")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\t%d\n", r.Destination, r.BreakerState, r.Paused,
			fmtTime(r.LastSuccessAt), fmtTime(r.LastFailureAt), deref(r.LastFailureClass), r.ConsecutiveFailures)
	}
	return tw.Flush()
}

type destinationPauseCmd struct {
	Name string `arg:"" help:"Destination name (see 'switchboard destination list')."`
}

func (c *destinationPauseCmd) Run(e *env) error { return setPaused(e, c.Name, true) }

type destinationResumeCmd struct {
	Name string `arg:"" help:"Destination name (see 'switchboard destination list')."`
}

func (c *destinationResumeCmd) Run(e *env) error { return setPaused(e, c.Name, false) }

// setPaused pauses or resumes one destination; switchboard.destination_set_paused
// refuses a name that is not a destination, listing the known ones.
func setPaused(e *env, name string, pause bool) error {
	pool, err := openBasePool(e)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := db.New().DestinationSetPaused(e.ctx, pool, db.DestinationSetPausedParams{Destination: name, Paused: pause, Actor: actor()}); err != nil {
		return sqlUserError(err)
	}
	if pause {
		fmt.Fprintf(e.stdout, "destination %s paused\n", name)
	} else {
		fmt.Fprintf(e.stdout, "destination %s resumed\n", name)
	}
	return nil
}

package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/switchboard-health/switchboard/internal/chaos"
)

// chaosCmd is `switchboard chaos`. Negative defaults mean "the mode's
// default" (chaos.Defaults).
type chaosCmd struct {
	Mode      string        `default:"chaos" enum:"chaos,delivery" help:"${enum}."`
	Duration  time.Duration `help:"How long to stream (default 3m in chaos mode; delivery mode streams --messages)."`
	Messages  int           `help:"How many messages to stream (default 10000 in delivery mode; none in chaos mode)."`
	Rate      float64       `help:"Messages per second (default 20 chaos, 50 delivery)."`
	FHIRRate  float64       `name:"fhir-rate" default:"-1" help:"Heart-rate observations per second pushed to a FHIR peer (Medplum, needs Node 20) behind the same faults; 0 disables (default 5 chaos, 0 delivery)."`
	Seed      int64         `help:"Seed of the fault draws and the schedule (default: from the clock; printed)."`
	Workers   int           `default:"3" help:"Worker processes."`
	KillEvery time.Duration `name:"kill-every" default:"-1ns" help:"Mean time between SIGKILLs of a worker; 0 disables (default 30s chaos, 0 delivery)."`
	PGRestart string        `name:"pg-restart" help:"PostgreSQL restart mode: immediate, fast or none (default immediate chaos, none delivery)."`
	Outage    time.Duration `default:"-1ns" help:"Length of the first provider's full outage; 0 disables (default 30s chaos, 1m delivery)."`
	Drain     time.Duration `help:"Longest wait after the stream for every message to be final (default derived: 5m chaos, 10m delivery, or an ambiguous send's settle bound plus 2m when longer; the report states it)."`
	Providers string        `default:"twilio" help:"Sandbox providers, in SMS_PROVIDERS order (twilio, telnyx)."`
	Fault5xx  float64       `name:"fault-5xx" default:"${fault_5xx}" help:"Share of provider requests answered 5xx."`
	Fault429  float64       `name:"fault-429" default:"${fault_429}" help:"Share answered 429 with Retry-After."`
	FaultTO   float64       `name:"fault-timeout" default:"${fault_timeout}" help:"Share that time out (no answer before TWILIO_REQUEST_TIMEOUT)."`
	After     float64       `name:"after-accept" default:"${fault_after_accept}" help:"Part of the 5xx and timeouts of sends that happen after the provider stored the message."`
	Reads     bool          `name:"read-faults" default:"true" negatable:"" help:"Fail list and fetch requests (reconciliation, lookups, probes) too."`
	Negative  float64       `default:"-1" help:"Share of messages to magic recipients: invalid, opted out, permanent (default 0.02 chaos, 0 delivery)."`
	Goal      float64       `default:"0.999" help:"Delivered share a delivery run must reach."`
	Keep      bool          `help:"Keep the run's directory (process logs, cluster) and print it."`
}

func (chaosCmd) Help() string {
	return `Makes a private PostgreSQL cluster in a temporary directory, migrates it,
serves sandbox providers in-process, runs this binary as the api and as
--workers worker processes, and streams messages through switchboard.send_sms
while it breaks things. Everything is on 127.0.0.1 and removed at the end.

  --mode chaos     SIGKILLs a random worker every ~--kill-every (and restarts
                   it), restarts PostgreSQL once (--pg-restart), fails provider
                   requests (5xx, 429, timeouts, part after acceptance) and
                   takes the first provider down for --outage. It also
                   records --fhir-rate observations a second, pushed to a
                   FHIR peer (Medplum, Node 20) behind the same faults; each
                   must reach it exactly once.
  --mode delivery  issue 4: --messages valid messages through the fault mix
                   and one outage; reports the delivered share within --drain
                   after the last enqueue, duplicates at the providers, wall time.

Then it checks every message: final, or still legitimately on its way (job
waiting, backing off with attempts left, snoozed within its limits, running,
or left by a killed worker and not yet past WORKER_RESCUE_AFTER); nothing lost;
every provider copy attributed to an attempt of its own message (?m= on the
callback URL and the attempt's provider id); no message sent twice (no
attempt outcome excuses a second copy); dead letters only for permanent
causes (a message held for an operator is reported, not a failure). It
measures, for each fault, how long after its end the messages it held up
took to become final. It prints a report and a one-line verdict, and exits 1
on any failure, including a check that could not run (or a missed delivery
goal).
`
}

func (c *chaosCmd) Validate() error {
	if c.Duration > 2*time.Hour || c.Drain > 2*time.Hour {
		return fmt.Errorf("--duration and --drain must be at most 2h")
	}
	switch c.PGRestart {
	case "", "immediate", "fast", "none":
	default:
		return fmt.Errorf("--pg-restart must be one of immediate, fast, none, not %q", c.PGRestart)
	}
	return nil
}

func (c *chaosCmd) Run(e *env) error {
	m := chaos.Mode(c.Mode)
	cfg := chaos.Defaults(m)
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("error finding this binary to run the processes: %w", err)
	}
	cfg.Binary = bin
	if c.Duration > 0 {
		cfg.Duration = c.Duration
		if c.Messages == 0 && m == chaos.ModeDelivery {
			cfg.Messages = 0
		}
	}
	if c.Messages > 0 {
		cfg.Messages = c.Messages
		if c.Duration == 0 && m == chaos.ModeChaos {
			cfg.Duration = 0
		}
	}
	setIf(&cfg.Rate, c.Rate, c.Rate > 0)
	setIf(&cfg.FHIRRate, c.FHIRRate, c.FHIRRate >= 0)
	setIf(&cfg.Seed, c.Seed, c.Seed != 0)
	cfg.Workers = c.Workers
	setIf(&cfg.KillEvery, c.KillEvery, c.KillEvery >= 0)
	setIf(&cfg.PGRestart, c.PGRestart, c.PGRestart != "")
	setIf(&cfg.Outage, c.Outage, c.Outage >= 0)
	setIf(&cfg.Drain, c.Drain, c.Drain > 0)
	setIf(&cfg.NegativeShare, c.Negative, c.Negative >= 0)
	cfg.Providers = strings.Split(c.Providers, ",")
	cfg.Faults = chaos.FaultMix{ServerError: c.Fault5xx, Throttle: c.Fault429, Timeout: c.FaultTO, AfterAccept: c.After, Reads: c.Reads}
	cfg.Goal = c.Goal
	cfg.Keep = c.Keep

	res, err := chaos.Run(e.ctx, cfg, e.stderr)
	if err != nil {
		fmt.Fprintf(e.stdout, "%s: FAIL the run could not be made: %v\n", m, err)
		return err
	}
	res.Report(e.stdout)
	if !res.OK() {
		return fmt.Errorf("%s run failed (seed %d): see the report above", m, res.Config.Seed)
	}
	return nil
}

func setIf[T any](dst *T, v T, ok bool) {
	if ok {
		*dst = v
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/switchboard-health/switchboard/internal/chaos"
)

const chaosSynopsis = `chaos [flags]

Makes a private PostgreSQL cluster in a temporary directory, migrates it,
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

func runChaos(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("chaos", chaosSynopsis, stdout)
	mode := fs.String("mode", "chaos", "chaos or delivery")
	duration := fs.Duration("duration", 0, "how long to stream (default 3m in chaos mode; delivery mode streams --messages)")
	messages := fs.Int("messages", 0, "how many messages to stream (default 10000 in delivery mode; none in chaos mode)")
	rate := fs.Float64("rate", 0, "messages per second (default 20 chaos, 50 delivery)")
	fhirRate := fs.Float64("fhir-rate", -1, "heart-rate observations per second pushed to a FHIR peer (Medplum, needs Node 20) behind the same faults; 0 disables (default 5 chaos, 0 delivery)")
	seed := fs.Int64("seed", 0, "seed of the fault draws and the schedule (default: from the clock; printed)")
	workers := fs.Int("workers", 3, "worker processes")
	killEvery := fs.Duration("kill-every", -1, "mean time between SIGKILLs of a worker; 0 disables (default 30s chaos, 0 delivery)")
	pgRestart := fs.String("pg-restart", "", "PostgreSQL restart mode: immediate, fast or none (default immediate chaos, none delivery)")
	outage := fs.Duration("outage", -1, "length of the first provider's full outage; 0 disables (default 30s chaos, 1m delivery)")
	drain := fs.Duration("drain", 0, "longest wait after the stream for every message to be final (default 5m chaos, 10m delivery)")
	providers := fs.String("providers", "twilio", "sandbox providers, in SMS_PROVIDERS order (twilio, telnyx)")
	f5xx := fs.Float64("fault-5xx", chaos.IssueMix.ServerError, "share of provider requests answered 5xx")
	f429 := fs.Float64("fault-429", chaos.IssueMix.Throttle, "share answered 429 with Retry-After")
	fTimeout := fs.Float64("fault-timeout", chaos.IssueMix.Timeout, "share that time out (no answer before TWILIO_REQUEST_TIMEOUT)")
	after := fs.Float64("after-accept", chaos.IssueMix.AfterAccept, "part of the 5xx and timeouts of sends that happen after the provider stored the message")
	reads := fs.Bool("read-faults", true, "fail list and fetch requests (reconciliation, lookups, probes) too")
	negative := fs.Float64("negative", -1, "share of messages to magic recipients: invalid, opted out, permanent (default 0.02 chaos, 0 delivery)")
	goal := fs.Float64("goal", 0.999, "delivered share a delivery run must reach")
	keep := fs.Bool("keep", false, "keep the run's directory (process logs, cluster) and print it")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"chaos takes no arguments, only flags"}
	}
	m := chaos.Mode(*mode)
	if m != chaos.ModeChaos && m != chaos.ModeDelivery {
		return usageError{"--mode must be chaos or delivery"}
	}
	cfg := chaos.Defaults(m)
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("error finding this binary to run the processes: %w", err)
	}
	cfg.Binary = bin
	if *duration > 0 {
		cfg.Duration = *duration
		if *messages == 0 && m == chaos.ModeDelivery {
			cfg.Messages = 0
		}
	}
	if *messages > 0 {
		cfg.Messages = *messages
		if *duration == 0 && m == chaos.ModeChaos {
			cfg.Duration = 0
		}
	}
	setIf(&cfg.Rate, *rate, *rate > 0)
	setIf(&cfg.FHIRRate, *fhirRate, *fhirRate >= 0)
	setIf(&cfg.Seed, *seed, *seed != 0)
	cfg.Workers = *workers
	setIf(&cfg.KillEvery, *killEvery, *killEvery >= 0)
	setIf(&cfg.PGRestart, *pgRestart, *pgRestart != "")
	setIf(&cfg.Outage, *outage, *outage >= 0)
	setIf(&cfg.Drain, *drain, *drain > 0)
	setIf(&cfg.NegativeShare, *negative, *negative >= 0)
	cfg.Providers = strings.Split(*providers, ",")
	cfg.Faults = chaos.FaultMix{ServerError: *f5xx, Throttle: *f429, Timeout: *fTimeout, AfterAccept: *after, Reads: *reads}
	cfg.Goal = *goal
	cfg.Keep = *keep
	if cfg.Duration > 2*time.Hour || cfg.Drain > 2*time.Hour {
		return usageError{"--duration and --drain must be at most 2h"}
	}

	res, err := chaos.Run(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stdout, "%s: FAIL the run could not be made: %v\n", m, err)
		return err
	}
	res.Report(stdout)
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

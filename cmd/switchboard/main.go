// Command switchboard runs Switchboard: migrations, the worker, the api, the
// all-in-one dev mode and the operator's tools. `switchboard --help` lists
// the commands; every command answers --help.
//
// The command line is parsed by github.com/alecthomas/kong from the structs
// below: one struct per command group (cli holds the groups), flags and
// positional arguments as tagged fields, a Run method per leaf command.
// Flags may come before or after positional arguments. Configuration comes
// from the environment (README "Configuration"), never from flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/switchboard-health/switchboard/internal/bench"
	"github.com/switchboard-health/switchboard/internal/chaos"
	"github.com/switchboard-health/switchboard/internal/deadletter"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, errHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchboard: "+err.Error())
		var ue usageError
		if errors.As(err, &ue) {
			if ue.hint != "" {
				fmt.Fprintf(os.Stderr, "Run '%s' for usage.\n", ue.hint)
			}
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// errHelp ends a command that printed its help (exit status 0).
var errHelp = errors.New("help")

// usageError is a mistake on the command line or in the configuration
// (exit status 2).
type usageError struct {
	msg  string
	hint string // the help command to suggest, for parse errors
}

func (e usageError) Error() string { return e.msg }

// cli is the whole command line: one field per command group. To add a
// command, add a field here (cmd:"" and a help tag) whose type has a
// Run(*env) error method, or add a field to an existing group's struct.
type cli struct {
	Migrate     migrateCmd     `cmd:"" help:"Apply, roll back or list migrations."`
	Worker      workerCmd      `cmd:"" help:"Work jobs (River); serve /healthz /readyz on WORKER_ADDR, /metrics on WORKER_METRICS_ADDR."`
	API         apiCmd         `cmd:"" name:"api" help:"Serve webhooks, River UI and probes on API_ADDR."`
	Dev         devCmd         `cmd:"" help:"Migrate, then run worker + api + sandbox providers + demo traffic."`
	DLQ         dlqCmd         `cmd:"" name:"dlq" help:"Inspect and act on dead letters."`
	Destination destinationCmd `cmd:"" help:"See destination health; stop or allow calls to one destination."`
	SMS         smsCmd         `cmd:"" name:"sms" help:"Settle SMS messages held for an operator."`
	EHR         ehrCmd         `cmd:"" name:"ehr" help:"Manage EHR endpoints (FHIR R4)."`
	Wearables   wearablesCmd   `cmd:"" help:"Connect links, Apple Health upload tokens, device connections."`
	Reencrypt   reencryptCmd   `cmd:"" help:"Re-seal stored tokens and keys with the first TOKEN_ENCRYPTION_KEYS key."`
	Bench       benchCmd       `cmd:"" help:"Measure enqueue, end-to-end, scale-out and soak against same-run baselines."`
	Chaos       chaosCmd       `cmd:"" help:"Crash and fault suite on a private cluster (loopback only); exit 1 on loss."`
	Healthcheck healthcheckCmd `cmd:"" help:"Exit 0 when URL answers 2xx (container health checks)."`
}

// env is what every command's Run receives: the signal-aware context and
// the output streams (tests pass buffers).
type env struct {
	ctx            context.Context
	stdout, stderr io.Writer
}

// exited carries kong's exit request (after --help, or a parse error it
// already printed) out of the parser instead of ending the process.
type exited int

const description = `Switchboard: outbound SMS, FHIR and wearables jobs for a PostgreSQL app.

Configuration comes from the environment; see README.md. Every command answers --help.`

// newParser builds the kong parser of cli writing to stdout and stderr.
func newParser(c *cli, stdout, stderr io.Writer) (*kong.Kong, error) {
	return kong.New(c,
		kong.Name("switchboard"),
		kong.Description(description),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exited(code)) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, NoExpandSubcommands: false}),
		kong.Vars{
			"dlq_states":         strings.Join(append(deadletter.States(), "all"), ","),
			"dlq_classes":        strings.Join(deadletter.Classes(), ","),
			"fault_5xx":          fmt.Sprint(chaos.IssueMix.ServerError),
			"fault_429":          fmt.Sprint(chaos.IssueMix.Throttle),
			"fault_timeout":      fmt.Sprint(chaos.IssueMix.Timeout),
			"fault_after_accept": fmt.Sprint(chaos.IssueMix.AfterAccept),
			"bench_scenarios":    strings.Join(bench.DefaultScenarios, ","),
			"bench_all":          strings.Join(bench.AllScenarios, ","),
		},
	)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	var c cli
	parser, err := newParser(&c, stdout, stderr)
	if err != nil {
		return fmt.Errorf("command line definition: %w", err)
	}
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		code, ok := r.(exited)
		if !ok {
			panic(r)
		}
		if code == 0 {
			err = errHelp
		} else {
			err = usageError{msg: fmt.Sprintf("exit status %d", int(code))}
		}
	}()
	kctx, err := parser.Parse(args)
	if err != nil {
		hint := "switchboard --help"
		var pe *kong.ParseError
		if errors.As(err, &pe) && pe.Context != nil {
			if p := commandPath(pe.Context); p != "" {
				hint = "switchboard " + p + " --help"
			}
		}
		return usageError{msg: oneLine(err.Error()), hint: hint}
	}
	return kctx.Run(&env{ctx: ctx, stdout: stdout, stderr: stderr})
}

// commandPath is the command words parsed so far ("dlq list").
func commandPath(k *kong.Context) string {
	var words []string
	for _, p := range k.Path {
		if p.Command != nil {
			words = append(words, p.Command.Name)
		}
	}
	return strings.Join(words, " ")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Command switchboard runs Switchboard: migrations, the worker, the api, the
// all-in-one dev mode and the operator's dead-letter tools.
//
//	switchboard migrate up|down|status|reset
//	switchboard worker
//	switchboard api
//	switchboard dev
//	switchboard dlq list|show|retry|purge
//	switchboard destination list|pause|resume
//	switchboard bench
//	switchboard wearables link|token|list|disconnect
//	switchboard chaos [--mode chaos|delivery]
//	switchboard healthcheck URL
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
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
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// errHelp ends a command that printed its help.
var errHelp = errors.New("help")

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

const usage = `Usage: switchboard <command> [arguments]

Commands:
  migrate up|down|status|reset   apply, roll back one, list, or redo all migrations
  worker                         work jobs (River) and serve /healthz /readyz on WORKER_ADDR, /metrics on WORKER_METRICS_ADDR
  api                            serve webhooks, River UI and probes on API_ADDR
  dev                            migrate, then worker + api + sandbox providers + demo traffic
  dlq list|show|retry|purge      inspect and act on dead letters
  destination list|pause|resume  see destination health; stop or allow calls to one destination
  bench                          measure enqueue, end-to-end, scale-out and soak against same-run baselines
  reencrypt                      re-seal stored tokens and keys with the first TOKEN_ENCRYPTION_KEYS key
  wearables link|token|list|disconnect  connect links, Apple Health upload tokens, device connections
  chaos [--mode chaos|delivery]  crash and fault suite on a private cluster (loopback only); exit 1 on loss
  healthcheck URL                exit 0 when URL answers 2xx (container health checks)
  ehr add|list|show|test|disable|enable|jwks  manage EHR endpoints (FHIR R4)

Configuration comes from the environment; see README.md.
Run 'switchboard <command> --help' for a command's arguments.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"a command is required"}
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return errHelp
	case "migrate":
		return runMigrate(ctx, args[1:], stdout, stderr)
	case "worker":
		return runWorker(ctx, args[1:], stdout, stderr)
	case "api":
		return runAPI(ctx, args[1:], stdout, stderr)
	case "dev":
		return runDev(ctx, args[1:], stdout, stderr)
	case "dlq":
		return runDLQ(ctx, args[1:], stdout, stderr)
	case "ehr":
		return runEHR(ctx, args[1:], stdout, stderr)
	case "destination":
		return runDestination(ctx, args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "reencrypt":
		return runReencrypt(ctx, args[1:], stdout, stderr)
	case "wearables":
		return runWearables(ctx, args[1:], stdout, stderr)
	case "chaos":
		return runChaos(ctx, args[1:], stdout, stderr)
	case "healthcheck":
		return runHealthcheck(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprint(stderr, usage)
		return usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
}

// Command fanoutctl is the operator CLI: status, top (live table), trip and release by hand, replay of scenario
// files through the real detector, and `node ...` commands for one node's agent.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/fanoutdev/fanout/aggregator/remediate"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: fanoutctl <command> [flags]

commands:
  status    show the aggregator's fleet view and active directives
  top       live table of workloads by fleet API rate and cost
  trip      block a workload fleet-wide by hand (needs an admin token)
  release   release a tripped workload by hand (needs an admin token)
  replay    run the detector over a scenario file in simulated time
  undo      undo a durable remediation (paused DaemonSet / scaled-down Deployment) through the API server
  node      commands for one node's agent (see fanoutctl node -h)

run fanoutctl <command> -h for its flags
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "replay":
		return runReplay(ctx, args[1:], stdout, stderr)
	case "status":
		return runStatus(ctx, args[1:], stdout, stderr)
	case "top":
		return runTop(ctx, args[1:], stdout, stderr)
	case "trip":
		return runManual(ctx, true, args[1:], stdout, stderr)
	case "release":
		return runManual(ctx, false, args[1:], stdout, stderr)
	case "undo":
		return remediate.RunUndoCLI(ctx, args[1:], stdout, stderr)
	case "node":
		return runNode(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "fanoutctl: unknown command %q (run 'fanoutctl --help' for the commands)\n", args[0])
	return 2
}

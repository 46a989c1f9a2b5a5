// Command bitmesh-sim runs bitmesh swarms in virtual time and reports. It
// is the simulator half of the bitmesh CLI, built apart so that the device
// binary does not carry the simulator, gonum/plot, its fonts and the
// testing package (about a quarter of its size). `bitmesh sim ARGS...`
// runs `bitmesh-sim ARGS...`, so its messages name the command users type.
//
//	bitmesh-sim list
//	bitmesh-sim run [--out DIR] [--json] [--cpuprofile FILE] [--memprofile FILE] SCENARIO
//	bitmesh-sim crosscheck [--out DIR] [--bin FILE] SCENARIO
//
// Build it with `go build ./cmd/bitmesh-sim` and keep it next to bitmesh
// (or install both with `go install ./cmd/...`).
//
// Exit codes: 0 success, 1 failure, 2 usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/bitmesh/bitmesh/internal/cli"
	"github.com/bitmesh/bitmesh/sim/scenarios"
)

func main() { os.Exit(runMain()) }

// runMain runs the command line with SIGINT and SIGTERM cancelling the
// context, so a cross-check stops its node processes cleanly.
func runMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := dispatch(ctx, args, stdout, stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "bitmesh sim: %v\n", err)
	return 1
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" {
		fmt.Fprintln(stderr, "Usage: bitmesh sim SUBCOMMAND [flags]\n\n"+
			"  run         run a scenario (a shipped name or a YAML file) in virtual time\n"+
			"  crosscheck  run a small scenario twice, in virtual time and as real bitmesh\n"+
			"              node processes on loopback with delayed links, side by side\n"+
			"  list        list the shipped scenarios")
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	switch args[0] {
	case "list":
		for _, n := range scenarios.Names() {
			fmt.Fprintln(stdout, n)
		}
		return nil
	case "run":
		return runSimRun(args[1:], stdout, stderr)
	case "crosscheck":
		return runSimCrosscheck(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "bitmesh sim: unknown subcommand %q (want run or list)\n", args[0])
	return errUsage
}

// Shared with cmd/bitmesh, so both accept the same command lines.
var (
	errUsage   = cli.ErrUsage
	parse      = cli.Parse
	newFlagSet = cli.NewFlagSet
)

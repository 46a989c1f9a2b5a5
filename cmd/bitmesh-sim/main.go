// Command bitmesh-sim runs bitmesh swarms in virtual time and reports. It
// is the simulator half of the bitmesh CLI, built apart so that the device
// binary does not carry the simulator, gonum/plot, its fonts and the
// testing package (about a quarter of its size). `bitmesh sim ARGS...`
// runs `bitmesh-sim ARGS...`, so its messages name the command users type.
//
//	bitmesh-sim list [--json]
//	bitmesh-sim run [--out DIR] [--json] [--cpuprofile FILE] [--memprofile FILE] SCENARIO
//	bitmesh-sim crosscheck [--out DIR] [--bin FILE] SCENARIO
//
// Build it with `go build ./cmd/bitmesh-sim` and keep it next to bitmesh
// (or install both with `go install ./cmd/...`).
//
// SIGINT or SIGTERM stops run and crosscheck at the next tenth of a
// virtual second: they write the report so far, marked partial
// ("partial": true, "stopped": "interrupted" in the JSON, a line atop the
// summary), and exit 128 + the signal's number.
//
// Exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted by
// SIGINT, 143 by SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/bitmesh/bitmesh/internal/cli"
	"github.com/bitmesh/bitmesh/sim/scenarios"
)

func main() { os.Exit(runMain()) }

// runMain runs the command line with SIGINT and SIGTERM cancelling the
// context: a run stops and writes its partial report, a cross-check also
// stops its node processes.
func runMain() int {
	ctx, stop := cli.SignalContext(context.Background())
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
	if in, ok := cli.InterruptedBy(ctx); ok {
		return in.ExitCode()
	}
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
		return runSimList(args[1:], stdout, stderr)
	case "run":
		return runSimRun(ctx, args[1:], stdout, stderr)
	case "crosscheck":
		return runSimCrosscheck(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "bitmesh sim: unknown subcommand %q (want list, run or crosscheck)\n", args[0])
	return errUsage
}

// runSimList serves `bitmesh sim list`: the shipped scenarios' names.
func runSimList(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sim list", "sim list [--json]", stderr)
	asJSON := fs.Bool("json", false, "print a JSON array of names")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	names := scenarios.Names()
	if *asJSON {
		return json.NewEncoder(stdout).Encode(names)
	}
	for _, n := range names {
		if _, err := fmt.Fprintln(stdout, n); err != nil {
			return err
		}
	}
	return nil
}

// Shared with cmd/bitmesh, so both accept the same command lines.
var (
	errUsage   = cli.ErrUsage
	parse      = cli.Parse
	newFlagSet = cli.NewFlagSet
)

// Command bitmesh runs and talks to bitmesh nodes: a signed-gossip mesh for
// IoT devices over libp2p GossipSub.
//
//	bitmesh node [--data DIR] [--listen MA]... [--bootstrap MA]... [--api HOST:PORT [--api-allow-remote]] [--network NAME]
//	bitmesh keygen [--data DIR] [--json]
//	bitmesh id [--data DIR] [--json]
//	bitmesh pub [--data DIR] TOPIC MESSAGE
//	bitmesh sub [--data DIR] TOPIC [--count N]
//	bitmesh peers [--data DIR] [--json]
//	bitmesh ban [--data DIR] [--for D] [--reason TEXT] [--json] SUBJECT
//	bitmesh unban [--data DIR] [--json] SUBJECT
//	bitmesh cert issue|revoke|show ...
//	bitmesh log show|checkpoint|receipt|proof|verify ...
//	bitmesh sim list|run|crosscheck ...   (runs bitmesh-sim, built apart)
//	bitmesh repair --data DIR [--dry-run]
//
// Exit codes: 0 success, 1 failure, 2 usage error (repair: 1 means data
// was lost).
//
// Run "bitmesh COMMAND --help" for each command's flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/bitmesh/bitmesh/internal/cli"
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"node", "run a node (creates the identity on first run)", runNode},
	{"keygen", "create a new identity in the data directory", runKeygen},
	{"id", "print the device ID and peer ID", runID},
	{"pub", "publish a message through the running node", runPub},
	{"sub", "print the verified messages of a topic, one JSON line each", runSub},
	{"peers", "list peers with their misbehaviour scores and bans", runPeers},
	{"ban", "ban a peer or device (persists across restarts)", runBan},
	{"unban", "lift a ban", runUnban},
	{"cert", "issue, revoke or show device certificates (permissioned meshes)", runCert},
	{"log", "show a node's Merkle logs, export and verify message receipts", runLog},
	{"sim", "run a swarm of real nodes in virtual time and report (needs bitmesh-sim)", runSim},
	{"repair", "check the data directory's stores; set damaged ones aside, keep what is readable", runRepair},
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "bitmesh: a signed-gossip mesh for IoT devices")
	fmt.Fprintln(w, "\nUsage: bitmesh COMMAND [flags] [args]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'bitmesh COMMAND --help' for a command's flags.")
}

func main() { os.Exit(runMain()) }

// runMain runs the command line with SIGINT and SIGTERM cancelling the
// command's context, so a node shuts down cleanly.
func runMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		if code, ok := exitStatus(err); ok { // bitmesh-sim already said why
			return code
		}
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		}
		fmt.Fprintf(stderr, "bitmesh %s: %v\n", c.name, err)
		return 1
	}
	fmt.Fprintf(stderr, "bitmesh: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// Shared with cmd/bitmesh-sim, so both accept the same command lines.
var (
	errUsage   = cli.ErrUsage
	parse      = cli.Parse
	newFlagSet = cli.NewFlagSet
	usagef     = cli.Usagef
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// Command bitmesh runs and talks to bitmesh nodes: a signed-gossip mesh for
// IoT devices over libp2p GossipSub.
//
//	bitmesh node [--data DIR] [--listen MA]... [--bootstrap MA]... [--api HOST:PORT [--api-allow-remote]] [--network NAME] ...
//	bitmesh keygen [--data DIR] [--json]
//	bitmesh id [--data DIR] [--json]
//	bitmesh pub [--data DIR] [--min-peers N] [--timeout D] [--json] TOPIC MESSAGE
//	bitmesh sub [--data DIR] [--count N] TOPIC
//	bitmesh peers [--data DIR] [--json]
//	bitmesh stats [--data DIR] [--json]
//	bitmesh config default
//	bitmesh ban [--data DIR] [--for D] [--reason TEXT] [--json] SUBJECT
//	bitmesh unban [--data DIR] [--json] SUBJECT
//	bitmesh cert issue|revoke|show ...
//	bitmesh log show [--json]
//	bitmesh log checkpoint [--json] TOPIC
//	bitmesh log receipt [--out FILE] TOPIC ENVELOPE-ID
//	bitmesh log proof [--out FILE] TOPIC INDEX
//	bitmesh log verify --log-key ID --origin ORIGIN [--witness ID]... [--min-cosigners N] [--json] RECEIPT
//	bitmesh sim list [--json]
//	bitmesh sim run [--out DIR] [--json] SCENARIO
//	bitmesh sim crosscheck [--out DIR] [--bin FILE] SCENARIO
//	bitmesh repair --data DIR [--dry-run]
//	bitmesh version [--json]            (also: bitmesh --version)
//	bitmesh help [COMMAND [SUBCOMMAND]]
//
// `bitmesh sim` runs the bitmesh-sim binary, built apart (go build
// ./cmd/bitmesh-sim), passing its exit status through.
//
// Usage and help text go to standard error, results to standard output.
// "bitmesh help COMMAND" prints what "bitmesh COMMAND --help" does.
//
// Exit codes:
//
//	0    success (also --help, and node or sub stopped by SIGINT/SIGTERM)
//	1    failure: I/O, network, no running node, a rejected request
//	2    usage error: unknown command or flag, wrong arguments, a missing
//	     required flag or a malformed flag value
//	3    log verify: the receipt is invalid (not a failure to read it)
//	1    repair: data was lost (damaged records could not be kept)
//	130  interrupted by SIGINT (143 for SIGTERM: 128 + the signal number);
//	     sim run and crosscheck first write the partial report
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/bitmesh/bitmesh/internal/cli"
	"github.com/bitmesh/bitmesh/internal/version"
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is the command table; init fills it, since help looks it up.
var commands []command

func init() {
	commands = []command{
		{"node", "run a node (creates the identity on first run)", runNode},
		{"keygen", "create a new identity in the data directory", runKeygen},
		{"id", "print the device ID and peer ID", runID},
		{"pub", "publish a message through the running node", runPub},
		{"sub", "print the verified messages of a topic, one JSON line each", runSub},
		{"peers", "list peers with their misbehaviour scores and bans", runPeers},
		{"stats", "show what the node dropped, by reason, and its validation counters", runStats},
		{"config", "print a complete configuration file for 'bitmesh node --config'", runConfig},
		{"ban", "ban a peer or device (persists across restarts)", runBan},
		{"unban", "lift a ban", runUnban},
		{"cert", "issue, revoke or show device certificates (permissioned meshes)", runCert},
		{"log", "show a node's Merkle logs, export and verify message receipts", runLog},
		{"share", "share a file with the mesh as a signed object; prints its ID", runShare},
		{"fetch", "fetch an object by ID from the mesh and write it, verified, to a file", runFetch},
		{"objects", "list the objects the node holds or is fetching", runObjects},
		{"pay", "buy services from peers through Lightning; list sales and credentials", runPay},
		{"mqtt", "print the bcrypt hash of an MQTT gateway password: bitmesh mqtt passwd < pw", runMQTT},
		{"sim", "run a swarm of real nodes in virtual time and report (needs bitmesh-sim)", runSim},
		{"repair", "check the data directory's stores; set damaged ones aside, keep what is readable", runRepair},
		{"version", "print the version, VCS revision and Go version of this binary", runVersion},
		{"help", "print the help of a command: bitmesh help COMMAND", runHelp},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "bitmesh: a signed-gossip mesh for IoT devices")
	fmt.Fprintln(w, "\nUsage: bitmesh COMMAND [flags] [args]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'bitmesh help COMMAND' or 'bitmesh COMMAND --help' for a command's flags.")
	fmt.Fprintln(w, "Exit codes: 0 success, 1 failure, 2 usage error, 3 invalid receipt (log verify), 130/143 interrupted.")
}

func lookup(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func main() { os.Exit(runMain()) }

// runMain runs the command line with SIGINT and SIGTERM cancelling the
// command's context, so a node shuts down cleanly and a simulation writes
// its partial report.
func runMain() int {
	ctx, stop := cli.SignalContext(context.Background())
	defer stop()
	return run(ctx, os.Args[1:], os.Stdout, os.Stderr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(stderr)
		return 0
	case "-version", "--version":
		args = append([]string{"version"}, args[1:]...)
	}
	c, ok := lookup(args[0])
	if !ok {
		fmt.Fprintf(stderr, "bitmesh: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return exitCode(ctx, c.name, c.run(ctx, args[1:], stdout, stderr), stderr)
}

// exitCode is the exit status for a command's error, which it reports on
// stderr unless the command or bitmesh-sim already did.
func exitCode(ctx context.Context, name string, err error, stderr io.Writer) int {
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
	fmt.Fprintf(stderr, "bitmesh %s: %v\n", name, err)
	switch in, interrupted := cli.InterruptedBy(ctx); {
	case interrupted:
		return in.ExitCode()
	case errors.Is(err, errInvalidReceipt):
		return 3
	}
	return 1
}

// runHelp serves `bitmesh help [COMMAND [SUBCOMMAND]]`: the overview, or
// what `bitmesh COMMAND [SUBCOMMAND] --help` prints.
func runHelp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		return nil
	}
	c, ok := lookup(args[0])
	if !ok {
		fmt.Fprintf(stderr, "bitmesh help: unknown command %q\n\n", args[0])
		usage(stderr)
		return errUsage
	}
	return c.run(ctx, append(args[1:], "--help"), stdout, stderr)
}

// runVersion serves `bitmesh version` and `bitmesh --version`.
func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "version [--json]", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	v := version.Get()
	if *asJSON {
		return json.NewEncoder(stdout).Encode(v)
	}
	rev := v.ShortRevision()
	if rev == "" {
		rev = "unknown"
	}
	_, err := fmt.Fprintf(stdout, "bitmesh %s\nrevision %s\n%s\n", v.Version, rev, v.GoVersion)
	return err
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

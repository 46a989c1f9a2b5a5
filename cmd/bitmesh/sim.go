package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"github.com/bitmesh/bitmesh/internal/cli"
)

// simCommand holds the simulator. It is a binary of its own because the
// simulator links gonum/plot, fonts and the testing package, about a
// quarter of the size of a binary that devices carry for nothing.
const simCommand = "bitmesh-sim"

// runSim runs `bitmesh sim ARGS...` as `bitmesh-sim ARGS...`, passing the
// standard streams and the exit status through, so the command users type
// stays what it was.
func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	self, _ := os.Executable()
	bin, err := findCompanion(simCommand, self)
	if err != nil {
		return fmt.Errorf("%w: build it with `go build ./cmd/bitmesh-sim` and put it next to bitmesh, or `go install ./cmd/bitmesh-sim`", err)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	// A signal from the terminal reaches bitmesh-sim too (same process
	// group), but one sent to bitmesh alone (kill PID, a service manager)
	// does not: pass on the signal that cancelled ctx, SIGTERM if none
	// did. bitmesh-sim then writes its partial report and exits 128+signo,
	// which bitmesh passes through; it is not killed.
	cmd.Cancel = func() error {
		sig := syscall.SIGTERM
		if in, ok := cli.InterruptedBy(ctx); ok {
			sig = in.Signal
		}
		return cmd.Process.Signal(sig)
	}
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return childExit(exit.ExitCode())
	}
	return err
}

// childExit is the exit status of a command bitmesh ran for the user,
// which already said what went wrong: bitmesh exits with it, silently.
type childExit int

func (c childExit) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

// exitStatus reports the status to exit with when err is a childExit. A
// child killed by a signal has status -1, and exits 1 here.
func exitStatus(err error) (int, bool) {
	var c childExit
	if !errors.As(err, &c) {
		return 0, false
	}
	if c < 0 {
		return 1, true
	}
	return int(c), true
}

var findCompanion = cli.FindCompanion

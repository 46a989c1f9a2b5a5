package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/bitmesh/bitmesh/internal/vtime"
	"github.com/bitmesh/bitmesh/sim"
)

func runSimCrosscheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sim crosscheck", "sim crosscheck [--out DIR] [--bin FILE] SCENARIO", stderr)
	out := fs.String("out", "", "write virtual.json, processes.json and crosscheck.md to DIR")
	bin := fs.String("bin", "", "bitmesh binary for the node processes (default: the one next to bitmesh-sim, else on PATH)")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	sc, err := loadScenario(pos[0])
	if err != nil {
		return err
	}
	if *bin == "" {
		// Looked up before the virtual run, which can take minutes.
		self, _ := os.Executable()
		if *bin, err = findCompanion("bitmesh", self); err != nil {
			return fmt.Errorf("%w: build it with `go build ./cmd/bitmesh`, or pass --bin", err)
		}
	}
	var virtual sim.Report
	var runErr error
	if err := vtime.WithT(func(t *testing.T) { virtual, runErr = sim.Run(t, sc, stderr, sim.WithContext(ctx)) }); err != nil {
		return errors.Join(err, runErr)
	}
	if runErr != nil {
		if !virtual.Partial {
			return runErr
		}
		// Stopped in virtual time: the processes never ran.
		return errors.Join(runErr, writeCrosscheck(*out, stdout, map[string]sim.Report{"virtual.json": virtual}, sim.Summary(virtual)))
	}
	work, err := os.MkdirTemp("", "bitmesh-crosscheck-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	real, runErr := sim.RunProcesses(ctx, sc, *bin, work, stderr)
	if runErr != nil && !real.Partial {
		return runErr
	}
	table := sim.Compare(virtual, real)
	if real.Partial {
		table = fmt.Sprintf("**Partial report**: the real-process run was %s after %.1f seconds.\n\n", real.Stopped, real.VirtualSeconds) + table
	}
	return errors.Join(runErr, writeCrosscheck(*out, stdout, map[string]sim.Report{"virtual.json": virtual, "processes.json": real}, table))
}

// writeCrosscheck writes the reports and the table to dir (if not empty)
// and prints the table.
func writeCrosscheck(dir string, stdout io.Writer, reports map[string]sim.Report, table string) error {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for name, r := range reports {
			b, err := json.MarshalIndent(r, "", "  ")
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o644); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "crosscheck.md"), []byte(table), 0o644); err != nil {
			return err
		}
	}
	_, err := io.WriteString(stdout, table)
	return err
}

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
	if err := vtime.WithT(func(t *testing.T) { virtual, runErr = sim.Run(t, sc, stderr) }); err != nil || runErr != nil {
		return errors.Join(err, runErr)
	}
	work, err := os.MkdirTemp("", "bitmesh-crosscheck-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	real, err := sim.RunProcesses(ctx, sc, *bin, work, stderr)
	if err != nil {
		return err
	}
	table := sim.Compare(virtual, real)
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		for name, r := range map[string]sim.Report{"virtual.json": virtual, "processes.json": real} {
			b, err := json.MarshalIndent(r, "", "  ")
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(*out, name), append(b, '\n'), 0o644); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(*out, "crosscheck.md"), []byte(table), 0o644); err != nil {
			return err
		}
	}
	_, err = io.WriteString(stdout, table)
	return err
}

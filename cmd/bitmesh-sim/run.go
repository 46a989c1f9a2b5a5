package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"

	"github.com/bitmesh/bitmesh/internal/vtime"
	"github.com/bitmesh/bitmesh/sim"
	"github.com/bitmesh/bitmesh/sim/scenarios"
)

func runSimRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sim run", "sim run [--out DIR] [--json] SCENARIO", stderr)
	out := fs.String("out", "", "write report.json, report.md and SVG plots to DIR")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of the summary")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to FILE (go tool pprof)")
	memProfile := fs.String("memprofile", "", "write a heap profile of the whole swarm, taken as the run ends, to FILE")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	sc, err := loadScenario(pos[0])
	if err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if limit, ok := softMemoryLimit(); ok {
		fmt.Fprintf(stderr, "sim: soft memory limit %.1f GiB, 3/4 of RAM (set GOMEMLIMIT to choose)\n", float64(limit)/(1<<30))
	}
	var rep sim.Report
	var runErr error
	opts := []sim.Option{sim.WithContext(ctx)}
	if *memProfile != "" {
		opts = append(opts, sim.AtEnd(func() {
			f, err := os.Create(*memProfile)
			if err != nil {
				fmt.Fprintln(stderr, "memprofile:", err)
				return
			}
			defer f.Close()
			runtime.GC()
			if err := pprof.WriteHeapProfile(f); err != nil {
				fmt.Fprintln(stderr, "memprofile:", err)
			}
		}))
	}
	if err := vtime.WithT(func(t *testing.T) { rep, runErr = sim.Run(t, sc, stderr, opts...) }); err != nil {
		return errors.Join(err, runErr)
	}
	if runErr != nil && !rep.Partial {
		return runErr
	}
	// A stopped run still writes and prints the report so far, marked
	// partial, then fails with runErr.
	if err := printReport(rep, *out, *asJSON, stdout); err != nil {
		return errors.Join(runErr, err)
	}
	return runErr
}

// printReport writes rep to dir (if not empty) and prints it.
func printReport(rep sim.Report, dir string, asJSON bool, stdout io.Writer) error {
	if dir != "" {
		if err := writeReport(dir, rep); err != nil {
			return err
		}
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(rep)
	}
	_, err := io.WriteString(stdout, sim.Summary(rep))
	return err
}

// loadScenario reads a shipped scenario by name, or a YAML file.
func loadScenario(name string) (sim.Scenario, error) {
	b, err := scenarios.Read(name)
	if err != nil {
		if b, err = os.ReadFile(name); err != nil {
			return sim.Scenario{}, fmt.Errorf("scenario %q is neither shipped (bitmesh sim list) nor a readable file: %w", name, err)
		}
	}
	return sim.ParseScenario(b)
}

func writeReport(dir string, rep sim.Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	plots, err := sim.WritePlots(dir, rep)
	if err != nil {
		return err
	}
	md := "# Simulation report: " + rep.Scenario + "\n\n" + strings.TrimRight(sim.Summary(rep), "\n") + "\n\n"
	for _, p := range plots {
		md += fmt.Sprintf("![%s](%s)\n", filepath.Base(p), filepath.Base(p))
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(md), 0o644)
}

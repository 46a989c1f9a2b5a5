package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/internal/cli"
)

// longScenario runs an hour of virtual time: only a stop ends it soon.
const longScenario = `name: long
seed: 5
nodes: 12
topology: {kind: random, degree: 3}
link: {latency_ms: 20, jitter_pct: 10}
traffic: {publishers: 2, messages: 3600, interval: 1s, size: 128}
warmup: 2s
drain: 2s
`

func writeLongScenario(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "long.yaml")
	if err := os.WriteFile(p, []byte(longScenario), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// partialReport reads DIR/report.json (or another report file) and
// checks it is marked partial.
func partialReport(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no partial report: %v", err)
	}
	var rep map[string]any
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep["partial"] != true || rep["stopped"] != "interrupted" {
		t.Fatalf("%s: partial %v, stopped %v", path, rep["partial"], rep["stopped"])
	}
	return rep
}

// TestRunStopsOnSignal: a run whose context a SIGINT cancelled stops,
// writes its report so far marked partial, and exits 130. The context is
// cancelled both before the swarm is up and while it runs.
func TestRunStopsOnSignal(t *testing.T) {
	scenario := writeLongScenario(t)
	for _, tc := range []struct {
		name  string
		after time.Duration
	}{
		{"before it starts", 0},
		{"while it runs", 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			timer := time.AfterFunc(tc.after, func() { cancel(cli.Interrupted{Signal: syscall.SIGINT}) })
			defer timer.Stop()
			out := t.TempDir()
			var stdout, stderr bytes.Buffer
			code := run(ctx, []string{"run", "--out", out, scenario}, &stdout, &stderr)
			if code != 130 {
				t.Fatalf("exit %d, want 130\nstderr: %s", code, stderr.String())
			}
			partialReport(t, filepath.Join(out, "report.json"))
			if !strings.Contains(stdout.String(), "Partial report") {
				t.Fatalf("summary does not say it is partial:\n%s", stdout.String())
			}
			if md, err := os.ReadFile(filepath.Join(out, "report.md")); err != nil || !strings.Contains(string(md), "Partial report") {
				t.Fatalf("report.md: %v\n%s", err, md)
			}
		})
	}
}

// TestCrosscheckStopsOnSignal: stopped in its virtual-time half, a
// cross-check writes the partial virtual report and starts no process.
func TestCrosscheckStopsOnSignal(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	timer := time.AfterFunc(2*time.Second, func() { cancel(cli.Interrupted{Signal: syscall.SIGTERM}) })
	defer timer.Stop()
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	// --bin: any executable will do, the processes never start.
	code := run(ctx, []string{"crosscheck", "--bin", "/bin/true", "--out", out, writeLongScenario(t)}, &stdout, &stderr)
	if code != 143 {
		t.Fatalf("exit %d, want 143\nstderr: %s", code, stderr.String())
	}
	partialReport(t, filepath.Join(out, "virtual.json"))
	if _, err := os.Stat(filepath.Join(out, "processes.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("processes.json of a run that never started: %v", err)
	}
}

// TestSignalsReachTheRun sends real signals to built binaries: SIGINT to
// bitmesh-sim, and SIGTERM to bitmesh alone while it runs `bitmesh sim`,
// which must pass it on. Each writes the partial report and exits
// 128+signo.
func TestSignalsReachTheRun(t *testing.T) {
	if testing.Short() {
		t.Log("-short: skipping the test of built binaries")
		return
	}
	dir := t.TempDir()
	for _, pkg := range []string{"bitmesh", "bitmesh-sim"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, pkg), "github.com/bitmesh/bitmesh/cmd/"+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	scenario := writeLongScenario(t)
	for _, tc := range []struct {
		name string
		args []string
		sig  syscall.Signal
		code int
	}{
		{"SIGINT to bitmesh-sim", []string{filepath.Join(dir, "bitmesh-sim"), "run"}, syscall.SIGINT, 130},
		{"SIGTERM to bitmesh sim", []string{filepath.Join(dir, "bitmesh"), "sim", "run"}, syscall.SIGTERM, 143},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			cmd := exec.Command(tc.args[0], append(tc.args[1:], "--out", out, scenario)...)
			// A process group of its own: the signal goes to the one
			// process, as `kill PID` sends it, not to the group.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Signal once the swarm runs: the first progress line.
			sc := bufio.NewScanner(stderr)
			sc.Split(scanCR)
			var log strings.Builder
			for sc.Scan() {
				log.WriteString(sc.Text() + "\n")
				if strings.Contains(sc.Text(), "virtual") {
					break
				}
			}
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			for sc.Scan() {
				log.WriteString(sc.Text() + "\n")
			}
			err = cmd.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != tc.code {
				t.Fatalf("exit %v, want status %d\nstderr:\n%s", err, tc.code, log.String())
			}
			rep := partialReport(t, filepath.Join(out, "report.json"))
			if v, _ := rep["virtual_seconds"].(float64); v <= 0 || v >= 3600 {
				t.Fatalf("virtual_seconds %v", rep["virtual_seconds"])
			}
		})
	}
}

// scanCR splits at newlines and carriage returns (progress lines).
func scanCR(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSimCrosscheck runs one small scenario in virtual time and as real
// bitmesh node processes with delayed loopback links: both must deliver
// everything, and the real run cannot beat the links' physics.
func TestSimCrosscheck(t *testing.T) {
	if testing.Short() {
		t.Log("-short: skipping the multi-process cross-check")
		return
	}
	dir := t.TempDir()
	scenario := filepath.Join(dir, "tiny.yaml")
	if err := os.WriteFile(scenario, []byte(`name: crosscheck-tiny
seed: 21
nodes: 8
topology: {kind: random, degree: 2}
link: {latency_ms: 20, jitter_pct: 10}
traffic: {publishers: 2, messages: 3, interval: 500ms, size: 256}
warmup: 3s
drain: 2s
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	code, stdout, stderr := runArgs("crosscheck", "--bin", buildBitmesh(t), "--out", out, scenario)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Count(stdout, "100.0000 %") != 2 {
		t.Fatalf("both runs must deliver everything:\n%s", stdout)
	}
	for _, f := range []string{"virtual.json", "processes.json", "crosscheck.md"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "processes.json"))
	if err != nil {
		t.Fatal(err)
	}
	rep := string(b)
	if !strings.Contains(rep, `"honest_delivery_ratio": 1`) {
		t.Fatalf("processes.json: %s", rep)
	}
}

// buildBitmesh builds the node binary the cross-check starts, without the
// race detector: a race-instrumented process takes about a second just to
// start. The node commands live in cmd/bitmesh, so this test binary cannot
// stand in for it the way cmd/bitmesh's tests run themselves.
func buildBitmesh(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bitmesh")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/bitmesh/bitmesh/cmd/bitmesh").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

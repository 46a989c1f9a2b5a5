package main

import (
	"os"
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
	code, stdout, stderr := runArgs("sim", "crosscheck", "--bin", buildBitmesh(t), "--out", out, scenario)
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

func TestMemTotal(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"MemTotal:       24579412 kB\nMemFree:  1 kB\n", 24579412 << 10, true},
		{"MemFree:  1 kB\nMemTotal: 1024 kB\n", 1 << 20, true},
		{"MemTotal: lots kB\n", 0, false},
		{"MemTotal: -5 kB\n", 0, false},
		{"MemTotal: 5 MB\n", 0, false},
		{"", 0, false},
	} {
		got, err := memTotal(strings.NewReader(c.in))
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("memTotal(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}

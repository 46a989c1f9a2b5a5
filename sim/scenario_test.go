package sim

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/sim/scenarios"
)

func TestShippedScenariosParse(t *testing.T) {
	names := scenarios.Names()
	if len(names) == 0 {
		t.Fatal("no shipped scenarios")
	}
	for _, n := range names {
		b, err := scenarios.Read(n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseScenario(b); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
}

func TestParseScenarioRejects(t *testing.T) {
	const base = "nodes: 10\ntraffic: {publishers: 2, messages: 1}\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown field names its line", base + "speed: 3\n", "line 3"},
		{"too few nodes", "nodes: 1\ntraffic: {publishers: 1, messages: 1}\n", "nodes"},
		{"degree too large", base + "topology: {degree: 10}\n", "degree"},
		{"unknown topology", base + "topology: {kind: ring}\n", "topology.kind"},
		{"asymmetric regions", base + "topology: {kind: regions, region_latency_ms: [[1, 2], [3, 1]]}\n", "symmetric"},
		{"ragged regions", base + "topology: {kind: regions, region_latency_ms: [[1, 2], [2]]}\n", "row 1"},
		{"explicit edge out of range", base + "topology: {kind: explicit, edges: [[0, 10, 5]]}\n", "edges[0]"},
		{"explicit self edge", base + "topology: {kind: explicit, edges: [[3, 3, 5]]}\n", "edges[0]"},
		{"explicit fractional node", base + "topology: {kind: explicit, edges: [[0.5, 1, 5]]}\n", "edges[0]"},
		{"bad chunks without a rollout", base + "adversaries: [{type: bad-chunks, count: 1, targets: 1}]\n", "bad-chunks needs a rollout"},
		{"drip feeder without a rollout", base + "adversaries: [{type: drip-chunks, count: 1, targets: 1, rate: 0.11}]\n", "drip-chunks needs a rollout"},
		{"jitter 100", base + "link: {jitter_pct: 100}\n", "jitter"},
		{"loss above 50 %", base + "link: {loss_pct: 60}\n", "loss_pct"},
		{"negative bandwidth", base + "link: {bandwidth_mbps: -1}\n", "bandwidth_mbps"},
		{"node max_message_age beyond a day", base + "node: {max_message_age: 25h}\n", "node"},
		{"negative replay delay", base + "adversaries: [{type: replay, count: 1, delay: -1s}]\n", "delay"},
		{"bad duration", base + "warmup: soon\n", "line 3"},
		{"publishers beyond nodes", "nodes: 3\ntopology: {degree: 2}\ntraffic: {publishers: 4, messages: 1}\n", "publishers"},
		{"unknown adversary", base + "adversaries: [{type: gremlin, count: 1}]\n", "gremlin"},
		{"adversary target out of range", base + "adversaries: [{type: censor, count: 1, targets: 1, target: 10}]\n", "target"},
		{"partition heals before it starts", base + "partitions: [{at: 5s, heal: 2s, fraction: 0.5}]\n", "partitions[0]"},
		{"churn downtime too long", base + "churn: {interval: 2s, fraction: 0.1, downtime: 3s}\n", "churn"},
		{"not YAML", "{[", "bad scenario"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseScenario([]byte(tc.yaml))
			if !errors.Is(err, ErrScenario) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrScenario mentioning %q", err, tc.want)
			}
		})
	}
}

func FuzzParseScenario(f *testing.F) {
	f.Add([]byte(smallScenario))
	for _, n := range scenarios.Names() {
		b, _ := scenarios.Read(n)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sc, err := ParseScenario(b)
		if err != nil {
			if !errors.Is(err, ErrScenario) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if err := sc.Validate(); err != nil {
			t.Fatalf("parsed scenario does not validate: %v", err)
		}
		if sc.Nodes <= 200 { // building a graph must not panic either
			newGraph(rand.New(rand.NewPCG(1, 2)), sc)
		}
	})
}

// TestShortestPaths checks Dijkstra on an explicit graph where the direct
// link is slower than the detour.
func TestShortestPaths(t *testing.T) {
	sc := Scenario{Nodes: 4, Topology: Topology{Kind: "explicit", Edges: [][3]float64{{0, 1, 10}, {1, 2, 10}, {0, 2, 50}, {2, 3, 5}}}}
	g := newGraph(rand.New(rand.NewPCG(1, 2)), sc)
	got := g.shortestFrom(0)
	want := []time.Duration{0, 10 * time.Millisecond, 20 * time.Millisecond, 25 * time.Millisecond}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("shortest paths from 0: %v, want %v", got, want)
		}
	}
}

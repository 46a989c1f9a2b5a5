package sim

import (
	"os"
	"testing"
)

const smallScenario = `
name: ci-small
seed: 7
nodes: 24
topology: {kind: random, degree: 4}
link: {latency_ms: 25, jitter_pct: 10}
traffic: {topic: sim, publishers: 4, messages: 5, interval: 1s, size: 512, work_bits: 6}
warmup: 3s
drain: 5s
adversaries:
  - {type: spam-no-pow, count: 3, targets: 3, rate: 20, start: 1s}
  - {type: invalid-signature, count: 2, targets: 3, rate: 5, start: 1s}
`

// TestScenarioDeliversAndBans runs a small swarm of real nodes in virtual
// time with two kinds of spammers: every honest message must reach every
// honest node, and every attacker must be banned by all its neighbours.
func TestScenarioDeliversAndBans(t *testing.T) {
	sc, err := ParseScenario([]byte(smallScenario))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(t, sc, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report: %+v", rep)
	if rep.HonestDeliveryRatio != 1 {
		t.Errorf("honest delivery %.4f, want 1", rep.HonestDeliveryRatio)
	}
	if rep.Messages != 20 || rep.Attackers != 5 {
		t.Errorf("%d messages, %d attackers; want 20 and 5", rep.Messages, rep.Attackers)
	}
	if rep.AttackersBanned != rep.Attackers {
		t.Errorf("%d of %d attackers banned by all their neighbours", rep.AttackersBanned, rep.Attackers)
	}
	if rep.LatencyMS.P50 < rep.ShortestPathMS.P50 {
		t.Errorf("median latency %.1f ms beats the shortest paths' %.1f ms: links are not delaying", rep.LatencyMS.P50, rep.ShortestPathMS.P50)
	}
}

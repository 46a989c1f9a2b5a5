//go:build !race

package sim

import "testing"

// TestNoRaceReplayNeverRedelivered: attackers keep every envelope they forward
// and send it again once the honest nodes' seen caches have forgotten it,
// past the freshness window. No honest subscriber may get a message twice,
// and the stale replays must get the replayer banned by every neighbour.
// (One replayer: a neighbour shared by two scores only the one whose copy
// reaches it first, and the other's copies are unscored duplicates.) A
// short freshness window keeps the run at 2.5 virtual minutes, not 6.
//
// Not built with -race: under the race detector this long bubble crashed
// the runtime in two of three full CI runs (a ThreadSanitizer CHECK, Go
// issue 78156, and a SIGSEGV in runtime.(*timer).maybeRunChan), never in
// ten runs on its own. The README's test command runs the
// NoRace tests in a second pass without -race.
func TestNoRaceReplayNeverRedelivered(t *testing.T) {
	rep := runScenario(t, `
name: ci-replay
seed: 11
nodes: 16
topology: {kind: random, degree: 4}
link: {latency_ms: 25, jitter_pct: 10}
traffic: {publishers: 4, messages: 20, interval: 1s, size: 256}
warmup: 3s
drain: 2m10s
node: {max_message_age: 10s, max_clock_skew: 5s}
adversaries:
  - {type: replay, count: 1, targets: 4, rate: 20}
`)
	t.Logf("report: %+v", rep)
	if rep.HonestDeliveryRatio != 1 || rep.Redelivered != 0 {
		t.Errorf("delivery %.4f, %d redelivered; want 1 and 0", rep.HonestDeliveryRatio, rep.Redelivered)
	}
	if rep.AttackersBanned != rep.Attackers {
		t.Errorf("%d of %d replayers banned by all their neighbours", rep.AttackersBanned, rep.Attackers)
	}
	if rep.Attackers != 1 {
		t.Errorf("%d attackers, want 1", rep.Attackers)
	}
}

package sim

import "testing"

// rolloutScenario is firmware-rollout at CI size: 24 nodes, a 2 MiB
// object in 64 KiB chunks over 20 Mbit/s links, two bad-chunks
// attackers announcing it first to three nodes each, one inv-flood
// attacker, and one drip-chunks attacker announcing it first to three
// nodes and serving one chunk every 9 s per request. The shipped
// scenarios run the full sizes (SIMULATION.md).
const rolloutScenario = `
name: ci-rollout
seed: 11
nodes: 24
topology: {kind: random, degree: 4}
link: {latency_ms: 20, jitter_pct: 10, bandwidth_mbps: 20}
traffic: {topic: sim, publishers: 4, messages: 5, interval: 1s, size: 30000, work_bits: 0}
warmup: 3s
drain: 60s
rollout: {size: 2097152, chunk_size: 65536, publisher: 0}
adversaries:
  - {type: bad-chunks, count: 2, targets: 3, rate: 1}
  - {type: inv-flood, count: 1, targets: 3, rate: 4}
  - {type: drip-chunks, count: 1, targets: 3, rate: 0.11}
`

// TestRolloutCompletesDespiteAdversaries: every honest node ends with the
// object, intact; bytes moved stay within 1.2 × receivers × size; every
// neighbour of a bad-chunks attacker that asked it for a chunk banned it
// at its first (one bad chunk per ban; the publisher, say, never asks);
// every inv-flood attacker is banned by all its neighbours; the drip
// feeder is dropped at the tails of its victims' downloads, not banned.
func TestRolloutCompletesDespiteAdversaries(t *testing.T) {
	rep := runScenario(t, rolloutScenario)
	r := rep.Rollout
	if r == nil {
		t.Fatal("no rollout report")
	}
	t.Logf("rollout: %+v; attackers banned %d of %d", *r, rep.AttackersBanned, rep.Attackers)
	if r.Complete != r.Receivers || r.Intact != r.Receivers {
		t.Errorf("%d of %d receivers complete, %d intact", r.Complete, r.Receivers, r.Intact)
	}
	if r.BytesRatio > 1.2 {
		t.Errorf("moved %.2f × receivers × size, bound 1.2", r.BytesRatio)
	}
	t.Logf("attacker links: %+v", rep.AttackerLinks)
	for _, l := range rep.AttackerLinks {
		switch l.Type {
		case "bad-chunks":
			if l.Banned == 0 || uint64(l.Banned) != r.BadChunks {
				t.Errorf("bad-chunks attackers banned on %d of %d links after %d bad chunks; want one bad chunk per ban", l.Banned, l.Links, r.BadChunks)
			}
		case "inv-flood":
			if l.Banned != l.Links {
				t.Errorf("inv-flood attackers banned on %d of %d links", l.Banned, l.Links)
			}
		case "drip-chunks":
			if l.Banned != 0 {
				t.Errorf("drip-chunks attacker banned on %d links: slowness alone is not scored", l.Banned)
			}
		}
	}
	// Its victims drop it at the tail of their downloads instead of
	// waiting 16 × 9 s for each of its requests (the drain is 60 s).
	if r.TailStalls == 0 {
		t.Error("no tail stall: the drip feeder was never dropped")
	}
	if r.InvOverBudget == 0 {
		t.Error("the flood was never over budget")
	}
	if r.GossipSubBytesPerByte <= 1 {
		t.Errorf("GossipSub cost %.2f bytes per delivered byte: not measured", r.GossipSubBytesPerByte)
	}
}

// Package sim runs swarms of real bitmesh nodes in virtual time, to see
// before deploying how a mesh of a given size behaves under attack.
//
// Every simulated node is a node.Node — the same validators, proof-of-work
// policy, rate limits, misbehaviour ledger and GossipSub scoring devices
// run — on a host of go-libp2p's in-memory network (p2p/net/mock), inside
// a testing/synctest bubble. Links delay traffic with timers, so virtual
// time advances only when every node waits: latencies are the topology's
// physics, whatever the CPU load, and nothing is re-implemented here.
//
// From a test:
//
//	sc, err := sim.ParseScenario(yamlBytes)
//	if err != nil {
//		t.Fatal(err)
//	}
//	rep, err := sim.Run(t, sc, os.Stderr) // progress to stderr
//	if err != nil {
//		t.Fatal(err)
//	}
//	if rep.HonestDeliveryRatio != 1 || rep.AttackersBanned != rep.Attackers {
//		t.Fatalf("%+v", rep)
//	}
//
// From the shell: bitmesh sim run SCENARIO --out DIR (docs/SIMULATION.md
// documents the scenario and report schemas).
//
// The caller's duties:
//
//  1. Call Run from a test's goroutine (not inside another synctest
//     bubble); it makes its own.
//  2. Size scenarios to the machine: every message costs each receiver
//     real CPU (decoding, scoring, forwarding), which takes no virtual
//     time but all of the wall time. Its BIP-340 signature is verified
//     once for the whole swarm (node.WithSharedSignatureCache, a
//     simulator-only option: the verdict is the same at every node).
//  3. Write adversaries as Adversary implementations driving the hosts
//     they are given; they must return when their context ends.
package sim

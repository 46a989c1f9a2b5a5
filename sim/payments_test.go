package sim

import "testing"

// TestFreeloaderNeverServed: 16 honest nodes sell a paid service and four
// of them buy from their neighbours every 5 s, while two freeloaders try
// junk tokens, unpaid challenges, spent units and paid tokens replayed at
// another seller. Every honest purchase must succeed and no freeloader
// attempt be served.
func TestFreeloaderNeverServed(t *testing.T) {
	rep := runScenario(t, `
name: ci-freeloader
seed: 7
nodes: 16
topology: {kind: random, degree: 4}
link: {latency_ms: 20}
traffic: {topic: sim, publishers: 2, messages: 30, interval: 1s, size: 64}
warmup: 5s
drain: 2s
payments: {price_msat: 1000, buyers: 4, interval: 5s}
adversaries:
  - {type: freeloader, count: 2, targets: 3}
`)
	p := rep.Payments
	if p == nil {
		t.Fatal("no payments report")
	}
	t.Logf("payments: %+v", *p)
	if p.HonestPurchases < 4*5 || p.HonestFailures != 0 {
		t.Errorf("honest purchases %d, failures %d; want at least 20 and none", p.HonestPurchases, p.HonestFailures)
	}
	if p.FreeloaderServed != 0 {
		t.Errorf("%d freeloader attempts served", p.FreeloaderServed)
	}
	if p.FreeloaderAttempts < 20 {
		t.Errorf("only %d freeloader attempts: the adversary did not run", p.FreeloaderAttempts)
	}
	for _, code := range []string{"malformed-token", "wrong-preimage", "exhausted", "bad-signature"} {
		if p.Refusals[code] == 0 {
			t.Errorf("no attempt refused %s: %v", code, p.Refusals)
		}
	}
	if rep.HonestDeliveryRatio != 1 {
		t.Errorf("honest delivery %.4f with payments on, want 1", rep.HonestDeliveryRatio)
	}
}

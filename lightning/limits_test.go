package lightning

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestChallengeLimits: each peer has its own budget of challenges, and
// all peers together one more, so that fresh peer IDs do not multiply
// the invoices the seller's Lightning node creates.
func TestChallengeLimits(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Backend = NewInProcessNetwork(nil).Backend(0)
	cfg.ChallengeRate, cfg.ChallengeBurst = 0.001, 2
	cfg.ChallengeRateTotal, cfg.ChallengeBurstTotal = 0.001, 3
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, b := peer.ID("a"), peer.ID("b")
	for i, want := range []bool{true, true, false} {
		if ok, over := l.allowChallenge(a); ok != want || over == want {
			t.Fatalf("peer a, challenge %d: allowed %v (over its own limit %v), want %v", i, ok, over, want)
		}
	}
	// b has its own burst of 2, but only one is left of the total; its
	// second refusal is not its fault.
	if ok, _ := l.allowChallenge(b); !ok {
		t.Fatal("peer b refused its first challenge")
	}
	if ok, over := l.allowChallenge(b); ok || over {
		t.Fatalf("peer b's second challenge: allowed %v, blamed %v; want refused without blame", ok, over)
	}
}

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
		if got := l.allowChallenge(a); got != want {
			t.Fatalf("peer a, challenge %d: allowed %v, want %v", i, got, want)
		}
	}
	// b has its own burst of 2, but only one is left of the total.
	if !l.allowChallenge(b) || l.allowChallenge(b) {
		t.Fatal("peer b got more than what is left of the total")
	}
}

package inventory

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestTrickleAnnouncesOnceWithinBudget steps the announcement queues: an
// ID goes to a peer once, never back to a peer that announced it to us,
// and never faster than the budget a peer grants (1000 IDs, then 10 a
// second), so an honest node holding many objects is never scored for
// flooding when it meets a peer.
func TestTrickleAnnouncesOnceWithinBudget(t *testing.T) {
	x, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	a, b := peer.ID("a"), peer.ID("b")
	now := time.Unix(1_800_000_000, 0)
	pa, pb := x.peerLocked(a), x.peerLocked(b)
	pb.known.Add(ID{1}, struct{}{}) // b announced ID{1} to us
	pa.queue = []ID{{1}, {2}, {1}}
	pb.queue = []ID{{1}, {2}}
	steps := []struct {
		name  string
		queue func()
		at    time.Duration
		wantA int
		wantB int
	}{
		{"each ID once; not back to its announcer", nil, 0, 2, 1},
		{"announced IDs are not announced again", func() { pa.queue = []ID{{1}, {2}}; pb.queue = []ID{{2}} }, 0, 0, 0},
		{"a burst of 1500 new IDs: the budget's 998 left now", func() { pa.queue = manyIDs(1500) }, 0, 998, 0},
		{"the rest waits: 10 a second", nil, time.Second, 10, 0},
		{"a minute on, the 492 left (600 allowed)", nil, time.Minute + time.Second, 492, 0},
	}
	for _, s := range steps {
		if s.queue != nil {
			s.queue()
		}
		got := x.takeQueues(now.Add(s.at))
		if len(got[a]) != s.wantA || len(got[b]) != s.wantB {
			t.Fatalf("%s: announced %d to a, %d to b; want %d, %d", s.name, len(got[a]), len(got[b]), s.wantA, s.wantB)
		}
	}
}

func manyIDs(n int) []ID {
	out := make([]ID, n)
	for i := range out {
		out[i] = ID{byte(i), byte(i >> 8), 0xee}
	}
	return out
}

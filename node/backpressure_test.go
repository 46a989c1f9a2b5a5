package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestOutboundCongestion(t *testing.T) {
	a, b := peer.ID("a"), peer.ID("b")
	o := newOutbound(8) // congested at 4 queued RPCs
	fill := func(p peer.ID, n int) {
		for range n {
			o.queued(p)
		}
	}
	fill(a, 4)
	fill(b, 3)
	for _, tc := range []struct {
		name  string
		peers []peer.ID
		want  bool
	}{
		{"no peers", nil, false},
		{"one congested peer", []peer.ID{a}, true},
		{"one peer with room", []peer.ID{b}, false},
		{"a peer with room among congested ones: a slow peer never stalls publishing", []peer.ID{a, b}, false},
		{"unknown peer has an empty queue", []peer.ID{a, "c"}, false},
	} {
		if got, _ := o.congested(tc.peers); got != tc.want {
			t.Errorf("%s: congested = %v, want %v", tc.name, got, tc.want)
		}
	}

	// A write that brings a's queue below the mark wakes the waiters.
	busy, room := o.congested([]peer.ID{a})
	if !busy {
		t.Fatal("a not congested")
	}
	o.written(a)
	select {
	case <-room:
	case <-time.After(5 * time.Second):
		t.Fatal("no signal when a's queue fell below the mark")
	}
	if busy, _ := o.congested([]peer.ID{a}); busy {
		t.Error("a still congested after a write")
	}
	// A closed stream forgets the queue.
	fill(a, 10)
	o.gone(a)
	if busy, _ := o.congested([]peer.ID{a}); busy || len(o.pending) != 1 {
		t.Errorf("after gone: congested %v, %d queues followed, want b's only", busy, len(o.pending))
	}
	o.written("never-queued") // harmless
}

// TestPublishWaitsForRoom: Publish waits while its only topic peer's
// outbound queue is congested and gives up with ErrCongested when ctx ends.
func TestPublishWaitsForRoom(t *testing.T) {
	a := startNode(t, LocalConfig())
	b := startPeer(t, a, LocalConfig())
	sub, err := b.Subscribe("t")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := a.Publish(ctx, "t", []byte("first"), WithMinPeers(1)); err != nil {
		t.Fatal(err)
	}
	for range a.out.high {
		a.out.queued(b.PeerID()) // as if b had stopped reading
	}
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if _, err := a.Publish(short, "t", []byte("second")); !errors.Is(err, ErrCongested) {
		t.Fatalf("publish to a congested peer: %v, want ErrCongested", err)
	}
	a.out.gone(b.PeerID())
	if _, err := a.Publish(ctx, "t", []byte("third")); err != nil {
		t.Fatalf("publish once the queue is gone: %v", err)
	}
}

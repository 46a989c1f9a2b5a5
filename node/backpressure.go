package node

import (
	"context"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// outbound follows how many RPCs wait in each peer's GossipSub outbound
// queue, so that Publish can wait for room instead of letting GossipSub
// drop what the node itself publishes. GossipSub drops an RPC for a peer
// whose queue is full; a publisher faster than its peers read would lose
// envelopes without a word.
//
// Publish waits only while every topic peer's queue is more than half
// full: one slow or silent peer (a hostile one, say) must not stall the
// node's publishing; GossipSub drops for it alone, counted.
type outbound struct {
	high int // a queue holding this many RPCs or more is congested

	mu      sync.Mutex
	pending map[peer.ID]int
	room    chan struct{} // closed, and replaced, when a queue falls below high
}

func newOutbound(queueSize int) *outbound {
	return &outbound{high: max(1, queueSize/2), pending: make(map[peer.ID]int), room: make(chan struct{})}
}

func (o *outbound) queued(p peer.ID) {
	o.mu.Lock()
	o.pending[p]++
	o.mu.Unlock()
}

func (o *outbound) written(p peer.ID) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, ok := o.pending[p]
	if !ok {
		return
	}
	if n <= 1 {
		delete(o.pending, p)
	} else {
		o.pending[p] = n - 1
	}
	if n == o.high {
		o.signalLocked()
	}
}

// gone forgets p's queue: its stream closed, and what it held with it.
func (o *outbound) gone(p peer.ID) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.pending[p]; ok {
		delete(o.pending, p)
		o.signalLocked()
	}
}

func (o *outbound) signalLocked() {
	close(o.room)
	o.room = make(chan struct{})
}

// congested reports whether every one of peers has a congested queue, and
// returns the channel closed when that may have changed.
func (o *outbound) congested(peers []peer.ID) (bool, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(peers) == 0 {
		return false, o.room
	}
	for _, p := range peers {
		if o.pending[p] < o.high {
			return false, o.room
		}
	}
	return true, o.room
}

// outboundRecheck bounds a wait for room between signals, in case a
// queue emptied without one (a write error leaves no completion).
const outboundRecheck = 50 * time.Millisecond

// wait blocks while every peer of t is congested, or until ctx ends.
func (o *outbound) wait(ctx context.Context, t *pubsub.Topic) error {
	for {
		busy, room := o.congested(t.ListPeers())
		if !busy {
			return nil
		}
		timer := time.NewTimer(outboundRecheck)
		select {
		case <-room:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		}
		timer.Stop()
	}
}

package node

import (
	"sync/atomic"

	"github.com/bitmesh/bitmesh/gossip"
)

// MessageStats counts the envelopes the node's receive path accepted
// since it started, split by who signed them. Refused envelopes are
// counted by reason in Drops instead.
type MessageStats struct {
	// Published counts the node's own envelopes its validator accepted
	// on their way out (GossipSub validates local publishes too): each
	// was handed to the mesh. A Publish refused before GossipSub (rate,
	// backpressure) is not counted.
	Published uint64
	// Received counts other devices' envelopes accepted: delivered to
	// local subscribers and forwarded, or recovered from a peer's log.
	Received uint64
}

// messageCounters backs Messages without a lock: observe runs on several
// validation workers at once.
type messageCounters struct {
	published, received atomic.Uint64
}

// count records one verdict of the receive path; local says the envelope
// is the node's own.
func (c *messageCounters) count(local bool, r gossip.Result) {
	switch {
	case r.Verdict != gossip.Accept:
	case local:
		c.published.Add(1)
	default:
		c.received.Add(1)
	}
}

// Messages returns how many envelopes the node accepted since it started,
// its own and other devices'.
func (n *Node) Messages() MessageStats {
	return MessageStats{Published: n.msgs.published.Load(), Received: n.msgs.received.Load()}
}

// Running reports whether the node is started and not yet closed: what a
// health check asks.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.started && !n.closed
}

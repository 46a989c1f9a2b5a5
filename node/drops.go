package node

import (
	"errors"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/node/ext"
)

// Nothing is dropped silently: every envelope the node does not deliver
// or forward is counted here by reason, wherever on the path it fell. The
// receive path's verdicts are counted in observe; GossipSub's own drops
// (full queues, slow subscribers) through dropTracer.

// DropReason says where and why envelopes were dropped.
type DropReason uint8

// Drop reasons. The receive path's (admit) come first, then GossipSub's.
const (
	DropMalformed         DropReason = iota // Reject: not a canonical envelope
	DropOversize                            // over the protocol or the local size limit
	DropWrongNetwork                        // another mesh's magic
	DropWrongTopic                          // the envelope's topic is not the one it came on
	DropStale                               // older than MaxAge (+ Grace: rejected)
	DropFuture                              // ahead by more than the allowed skew
	DropInsufficientWork                    // below the committed, base or local target
	DropBadSignature                        // forged or damaged
	DropDuplicate                           // the ID was delivered under another signature
	DropPeerRate                            // the forwarding peer exceeded its rate
	DropSenderRate                          // the signing device exceeded its rate
	DropBanned                              // the signing device is banned
	DropNotCertified                        // no valid certificate (permissioned mesh)
	DropExtension                           // an extension's topic hook refused it (quota, full log)
	DropOther                               // a refusal of none of the kinds above
	DropValidateQueueFull                   // GossipSub's validation queue was full on arrival
	DropValidateThrottled                   // GossipSub's concurrent-validation limit was reached
	DropOutboundQueueFull                   // not queued for a peer (its queue full, or it left)
	DropSubscriberSlow                      // a local subscriber's buffer was full
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{
	"malformed", "oversize", "wrong-network", "wrong-topic", "stale", "future",
	"insufficient-work", "bad-signature", "duplicate", "peer-rate", "sender-rate",
	"banned", "not-certified", "extension", "other",
	"validate-queue-full", "validate-throttled", "outbound-queue-full", "subscriber-slow",
}

func (r DropReason) String() string {
	if r < numDropReasons {
		return dropReasonNames[r]
	}
	return "unknown"
}

// dropCounters counts drops by reason without a lock: the receive path
// runs on several validation workers at once.
type dropCounters [numDropReasons]atomic.Uint64

func (c *dropCounters) add(r DropReason, n uint64) { c[r].Add(n) }

// Drops returns how many envelopes the node dropped, by reason, since it
// started: those its receive path refused and those GossipSub could not
// queue or hand to a subscriber. Reasons with no drop are left out.
func (n *Node) Drops() map[string]uint64 {
	out := make(map[string]uint64)
	for r := range numDropReasons {
		if v := n.drops[r].Load(); v > 0 {
			out[r.String()] = v
		}
	}
	return out
}

// dropClasses maps the receive path's errors to reasons, first match wins.
var dropClasses = []struct {
	err    error
	reason DropReason
}{
	{gossip.ErrMalformed, DropMalformed},
	{gossip.ErrOversize, DropOversize},
	{gossip.ErrWrongNetwork, DropWrongNetwork},
	{gossip.ErrWrongTopic, DropWrongTopic},
	{gossip.ErrStale, DropStale},
	{gossip.ErrFuture, DropFuture},
	{gossip.ErrInsufficientWork, DropInsufficientWork},
	{gossip.ErrBadSignature, DropBadSignature},
	{gossip.ErrDuplicate, DropDuplicate},
	{antispam.ErrRateLimited, DropSenderRate},
	{antispam.ErrBanned, DropBanned},
	{ErrNotCertified, DropNotCertified},
	{ext.ErrIgnore, DropExtension},
}

// dropReason classifies a refusal of the receive path.
func dropReason(err error) DropReason {
	for _, c := range dropClasses {
		if errors.Is(err, c.err) {
			return c.reason
		}
	}
	if _, ok := errors.AsType[*ext.RejectError](err); ok {
		return DropExtension
	}
	return DropOther
}

// dropTracer counts GossipSub's own drops and follows its outbound queues
// (backpressure.go) and its inbound messages (inflow.go). It is called synchronously from GossipSub's
// goroutines, so it only counts.
type dropTracer struct {
	drops *dropCounters
	out   *outbound
	in    *inflow
}

var _ pubsub.RawTracer = dropTracer{}

func (t dropTracer) SendRPC(_ *pubsub.RPC, p peer.ID)                           { t.out.queued(p) }
func (t dropTracer) SendRPCCompleted(_ *pubsub.RPC, p peer.ID, _ time.Duration) { t.out.written(p) }
func (t dropTracer) OnClosedOutboundStream(p peer.ID)                           { t.out.gone(p) }
func (t dropTracer) RecvRPC(rpc *pubsub.RPC)                                    { t.in.received(rpc.GetPublish(), time.Now()) }

func (t dropTracer) RejectMessage(_ *pubsub.Message, reason string) {
	switch reason {
	case pubsub.RejectValidationQueueFull:
		t.drops.add(DropValidateQueueFull, 1)
	case pubsub.RejectValidationThrottled:
		t.drops.add(DropValidateThrottled, 1)
	}
	// Failed and ignored validations were counted by the receive path.
}

func (t dropTracer) DropRPC(rpc *pubsub.RPC, _ peer.ID) {
	if n := len(rpc.GetPublish()); n > 0 {
		t.drops.add(DropOutboundQueueFull, uint64(n))
	}
}

func (t dropTracer) UndeliverableMessage(*pubsub.Message) { t.drops.add(DropSubscriberSlow, 1) }

func (dropTracer) Join(string)                              {}
func (dropTracer) Leave(string)                             {}
func (dropTracer) Graft(peer.ID, string)                    {}
func (dropTracer) Prune(peer.ID, string)                    {}
func (dropTracer) ValidateMessage(*pubsub.Message)          {}
func (dropTracer) DeliverMessage(*pubsub.Message)           {}
func (dropTracer) DuplicateMessage(*pubsub.Message)         {}
func (dropTracer) ThrottlePeer(peer.ID)                     {}
func (dropTracer) OnNewOutboundStream(peer.ID, protocol.ID) {}

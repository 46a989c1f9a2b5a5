package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/node/ext"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The receive path. Every envelope that a node delivers, forwards or lets
// an extension store passes admit, whichever way it arrived: live gossip
// (topicValidator) or another node's log recovered by history sync
// (ext.Host.Admit). Only the freshness reference and the per-forwarder
// rate limit differ between the two; see PROTOCOL.md §18.6.

// topicValidator is the GossipSub validator of one topic: the per-peer
// rate limit (before any decoding), then admit.
func (n *Node) topicValidator(topic string) pubsub.ValidatorEx {
	return func(_ context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		n.in.validating(m.Message, time.Now())
		now := n.clock()
		if from != n.self && !n.def.limiter.AllowPeer(now, from) {
			n.drops.add(DropPeerRate, 1)
			n.penalise(n.peerSubject(from), antispam.RateExceeded)
			return pubsub.ValidationIgnore
		}
		r := n.admit(now, from, topic, m.GetData(), time.Time{})
		if r.Verdict == gossip.Accept {
			m.ValidatorData = r.Envelope
		}
		return r.Verdict.PubSub()
	}
}

// admit runs raw through every check an envelope must pass: the gossip
// pipeline (size, decode, network, topic, freshness, work, signature);
// then, with the sender authenticated, its certificate in a permissioned
// mesh, its bans and its rate; last the topic's extension hook, which may
// store the envelope (a log append) or refuse it. Faults are scored
// against from, the forwarder or the peer that served the history, and
// every verdict goes to the observer.
//
// committedAt is zero for live gossip. For an entry of another node's log
// it is when this node accepted the checkpoint committing to the entry:
// freshness is judged against it, and the sender's rate against the
// envelopes' own times, in buckets of their own, so that recovering a
// busy device's history neither trips nor drains its live budget.
func (n *Node) admit(now time.Time, from peer.ID, topic string, raw []byte, committedAt time.Time) gossip.Result {
	start := time.Now() // wall time even on a simulated clock: this times CPU work
	defer func() { n.validateTimes.observe(time.Since(start)) }()
	local := from == n.self
	recovered := !committedAt.IsZero()
	var r gossip.Result
	if recovered {
		r = n.validator.ValidateRecovered(now, committedAt, topic, raw)
	} else {
		r = n.validator.Validate(now, topic, raw)
		// The adaptive difficulty counts every envelope that met the base,
		// including those ignored for this node's raised target: counting
		// only accepted ones would hide the flood the raise is holding off.
		if r.Verdict == gossip.Accept || (r.Verdict == gossip.Ignore && errors.Is(r.Err, gossip.ErrInsufficientWork)) {
			n.def.work.Observe(now, topic)
		}
	}
	switch {
	case r.Verdict == gossip.Reject && !local:
		if mis, ok := antispam.ClassifyReject(r.Err); ok {
			n.penalise(antispam.PeerSubject(from), mis)
			n.penaliseSigner(r, mis)
		}
	case r.Verdict != gossip.Accept:
	case n.adm != nil && !n.adm.certified(now, r.Envelope.Sender):
		// The forwarder may not have our revocations yet: not its fault.
		r.Verdict, r.Err = gossip.Ignore, fmt.Errorf("%w: sender %s", ErrNotCertified, r.Envelope.Sender)
	case n.deviceBanned(r.Envelope.Sender):
		// The forwarder may not know of our ban: not its fault.
		r.Verdict, r.Err = gossip.Ignore, fmt.Errorf("%w: sender %s", antispam.ErrBanned, r.Envelope.Sender)
	case !local && !n.allowSender(now, r.Envelope, recovered):
		// The signature is verified, so the device really sent this much.
		n.penalise(n.deviceSubject(r.Envelope.Sender), antispam.SenderRateExceeded)
		r.Verdict, r.Err = gossip.Ignore, fmt.Errorf("%w: sender %s", antispam.ErrRateLimited, r.Envelope.Sender)
	default:
		n.runHook(from, &r, raw, recovered)
	}
	if local && r.Verdict != gossip.Accept {
		n.recordLocalRefusal(r.ID, r.Err)
	}
	n.observe(from, topic, r)
	return r
}

// maxLocalRefusals bounds the reasons kept for Publish; each is taken by
// the Publish that caused it at once, so only a lost one stays.
const maxLocalRefusals = 256

// recordLocalRefusal keeps why the node's own envelope id was refused, for
// Publish to return: GossipSub reports only "validation ignored".
func (n *Node) recordLocalRefusal(id gossip.ID, err error) {
	n.refusedMu.Lock()
	defer n.refusedMu.Unlock()
	if len(n.refused) >= maxLocalRefusals {
		clear(n.refused)
	}
	n.refused[id] = err
}

// localRefusal takes the reason recorded for id, if any.
func (n *Node) localRefusal(id gossip.ID) error {
	n.refusedMu.Lock()
	defer n.refusedMu.Unlock()
	err := n.refused[id]
	delete(n.refused, id)
	return err
}

// allowSender takes a token from the sender's bucket: at now for live
// envelopes, at the envelope's own time for recovered ones.
func (n *Node) allowSender(now time.Time, env *gossip.Envelope, recovered bool) bool {
	if recovered {
		return n.def.historyLimiter.AllowSender(env.Time, env.Sender)
	}
	return n.def.limiter.AllowSender(now, env.Sender)
}

// runHook gives an envelope the node accepted to the topic's extension
// hook, which may turn the verdict into Ignore or Reject.
func (n *Node) runHook(from peer.ID, r *gossip.Result, raw []byte, recovered bool) {
	h, ok := n.topicHook(r.Envelope.Topic)
	if !ok {
		return
	}
	check := h.Check
	if recovered && h.CheckRecovered != nil {
		check = h.CheckRecovered
	}
	if check != nil {
		err := check(from, r.Envelope, raw)
		v, mis := ext.CheckVerdict(err)
		if v != gossip.Accept {
			r.Verdict, r.Err = v, err
			if v == gossip.Reject && from != n.self {
				n.penalise(antispam.PeerSubject(from), mis)
			}
			return
		}
	}
	if h.Accepted != nil {
		h.Accepted(from, r.Envelope, raw)
	}
}

// penaliseSigner also scores the device that signed a rejected envelope,
// for the faults that are the signer's own choice: committing to too little
// work, or a timestamp far in the future. Those checks come before the
// signature's, so the signature is verified here first: only a device that
// really signed the bad content is blamed. The cost is bounded: the
// forwarder is scored for every such envelope and banned after a few.
func (n *Node) penaliseSigner(r gossip.Result, m antispam.Misbehaviour) {
	if r.Envelope == nil || (m != antispam.InsufficientWork && m != antispam.Future) {
		return
	}
	if identity.VerifyBIP340(r.Envelope.Sender, r.ID, r.Envelope.Signature) == nil {
		n.penalise(n.deviceSubject(r.Envelope.Sender), m)
	}
}

func (n *Node) deviceBanned(d identity.DeviceID) bool {
	_, banned := n.def.ledger.Banned(n.clock(), n.deviceSubject(d))
	return banned
}

// standing is ext.Host.Standing.
func (n *Node) standing(d identity.DeviceID) ext.Standing {
	switch {
	case n.deviceBanned(d):
		return ext.Refused
	case n.adm == nil:
		return ext.Open
	case n.adm.certified(n.clock(), d):
		return ext.Certified
	default:
		return ext.Refused
	}
}

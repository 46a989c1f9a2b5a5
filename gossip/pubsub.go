package gossip

import (
	"context"
	"time"

	"github.com/bitmesh/bitmesh/identity"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// PubSubMessageID is GossipSub's message ID function for bitmesh topics: the
// 32-byte envelope ID followed by the 64-byte signature. The signature must
// be part of it: GossipSub marks an ID seen before validating, so if the ID
// left the signature out, a copy with forged signature bytes that arrived
// first would make every node drop the genuine envelope as a duplicate and
// penalise the honest peers forwarding it. Input too short to hold a
// signature is hashed whole (validation rejects it anyway).
func PubSubMessageID(m *pb.Message) string {
	raw := m.GetData()
	id := MessageID(raw)
	if len(raw) < identity.SignatureSize {
		return string(id[:])
	}
	return string(id[:]) + string(raw[len(raw)-identity.SignatureSize:])
}

// IDFromPubSubMessageID returns the envelope ID inside a PubSubMessageID.
func IDFromPubSubMessageID(s string) ID {
	var id ID
	copy(id[:], s)
	return id
}

// Observer receives every validation result with the peer that forwarded the
// envelope (the local peer for own publishes). It must not block; the
// anti-spam ledger and metrics hang here.
type Observer func(from peer.ID, topic string, r Result)

// PubSubValidator adapts v to GossipSub for one mesh topic. clock supplies
// the time (time.Now in a node, a virtual clock in a simulation). On Accept
// the decoded *Envelope is stored in the message's ValidatorData, so
// subscribers never decode twice. observe may be nil.
func (v *Validator) PubSubValidator(topic string, clock func() time.Time, observe Observer) pubsub.ValidatorEx {
	return func(_ context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		r := v.Validate(clock(), topic, m.GetData())
		if observe != nil {
			observe(from, topic, r)
		}
		switch r.Verdict {
		case Accept:
			m.ValidatorData = r.Envelope
			return pubsub.ValidationAccept
		case Ignore:
			return pubsub.ValidationIgnore
		default:
			return pubsub.ValidationReject
		}
	}
}

package gossip

import (
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

// PubSub is the verdict as GossipSub's validation result. A node's topic
// validator (node.Node.admit) returns it; on Accept it also stores the
// decoded *Envelope in the message's ValidatorData, so subscribers never
// decode twice.
func (v Verdict) PubSub() pubsub.ValidationResult {
	switch v {
	case Accept:
		return pubsub.ValidationAccept
	case Ignore:
		return pubsub.ValidationIgnore
	default:
		return pubsub.ValidationReject
	}
}

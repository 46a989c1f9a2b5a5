package gossip

import (
	"context"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// PubSubMessageID is GossipSub's message ID function for bitmesh topics: the
// envelope ID, so GossipSub's seen cache, IHAVE/IWANT and our seen cache all
// speak of the same identifier.
func PubSubMessageID(m *pb.Message) string {
	id := MessageID(m.GetData())
	return string(id[:])
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

package sim

import (
	"context"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bitmesh/bitmesh/gossip"
)

// replayBacklog bounds the envelopes one replaying attacker holds.
const replayBacklog = 10000

// replay attackers join the topic like honest peers and forward what they
// get, keeping a copy of every envelope; Delay after receiving one, each
// sends it again from its own GossipSub, at most Rate per second. The
// copies are genuine and correctly signed, so only the envelope's age
// and the seen caches stand between them and a second delivery: within
// the seen caches a replay is a duplicate (dropped, and never delivered
// twice), beyond them and the freshness window a stale envelope
// (Rejected, and scored against the attacker that forwarded it).
type replay struct{}

func (replay) Run(ctx context.Context, env AttackEnv) error {
	return eachAttacker(env, func(_ int, a Attacker) error { return replayFrom(ctx, env, a) })
}

type captured struct {
	due  time.Time
	data []byte
}

func replayFrom(ctx context.Context, env AttackEnv, a Attacker) error {
	delay := env.Spec.Delay.Duration
	// The attacker's own seen cache must forget an envelope before it is
	// due, or its router would refuse to publish it again.
	seen := min(delay/2, pubsub.TimeCacheDuration)
	// Flood publishing sends each replay to every neighbour, not just to
	// those that still keep the attacker in their mesh: each prunes it
	// after its first stale envelope.
	ps, err := pubsub.NewGossipSub(ctx, a.Host, pubsub.WithMessageIdFn(gossip.PubSubMessageID), pubsub.WithNoAuthor(),
		pubsub.WithSeenMessagesTTL(max(seen, time.Second)), pubsub.WithFloodPublish(true))
	if err != nil {
		return err
	}
	queue := make(chan captured, replayBacklog)
	var mu sync.Mutex
	kept := map[string]bool{} // IDs already captured: the seen cache forgets, this does not
	t, leave, err := relay(ps, env, func(_ context.Context, _ peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		if m.ReceivedFrom == a.Host.ID() {
			return pubsub.ValidationAccept // our own replay
		}
		id := gossip.PubSubMessageID(m.Message)
		mu.Lock()
		defer mu.Unlock()
		if !kept[id] {
			kept[id] = true
			select {
			case queue <- captured{due: time.Now().Add(delay), data: m.GetData()}:
			default: // backlog full: let this one go
			}
		}
		return pubsub.ValidationAccept
	})
	if err != nil {
		return err
	}
	defer leave()
	gap := time.Duration(float64(time.Second) / env.Spec.Rate)
	for {
		var c captured
		select {
		case <-ctx.Done():
			return nil
		case c = <-queue:
		}
		wait := time.NewTimer(max(time.Until(c.due), gap))
		select {
		case <-ctx.Done():
			wait.Stop()
			return nil
		case <-wait.C:
		}
		if err := t.Publish(ctx, c.data); err != nil && ctx.Err() == nil {
			return err
		}
	}
}

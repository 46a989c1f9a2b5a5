package sim

import (
	"context"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
)

// sybil hosts run plain GossipSub on the topic and forward what they get,
// so that honest nodes find them useful and take them into their meshes;
// then, at Strike, they all turn at once. What they turn into is the
// attack:
//
//   - covert-flash: silent — they stay connected but forward nothing (the
//     gossipsub-hardening "covert flash" attack);
//   - eclipse: the same, with every sybil linked to the Target node only,
//     to crowd its mesh first;
//   - censor: from the start, they forward everything except what the
//     Target node publishes;
//   - sybil-swarm: silent from Start (give Strike 0): black holes that
//     take mesh slots and forward nothing;
//   - cold-boot: the same black holes, linked before the honest nodes
//     link to each other and silent from the run's first instant, so no
//     honest node has history to score them by (AdversarySpec.coldBoot).
type sybil struct {
	silence bool // turn silent at Strike
	censor  bool // drop the Target's envelopes throughout
}

func (s sybil) Run(ctx context.Context, env AttackEnv) error {
	strike := time.Now().Add(env.Spec.Strike.Duration)
	var target identity.DeviceID
	if s.censor {
		target = env.Honest[env.Spec.Target]
	}
	return eachAttacker(env, func(_ int, a Attacker) error { return s.serve(ctx, env, a, strike, target) })
}

func (s sybil) serve(ctx context.Context, env AttackEnv, a Attacker, strike time.Time, target identity.DeviceID) error {
	ps, err := pubsub.NewGossipSub(ctx, a.Host, pubsub.WithMessageIdFn(gossip.PubSubMessageID), pubsub.WithNoAuthor())
	if err != nil {
		return err
	}
	_, leave, err := relay(ps, env, func(_ context.Context, _ peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		if s.silence && !time.Now().Before(strike) {
			return pubsub.ValidationIgnore
		}
		if s.censor {
			if e, err := gossip.Decode(m.GetData()); err == nil && e.Sender == target {
				return pubsub.ValidationIgnore
			}
		}
		return pubsub.ValidationAccept
	})
	if err != nil {
		return err
	}
	defer leave()
	<-ctx.Done()
	return nil
}

package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/node"
)

// Adversary attacks the simulated mesh through real libp2p hosts: the
// engine creates them on the simulated network, links each to Targets
// random honest nodes, and calls Run at the spec's Start time. Implement it
// to test your own attack; register it in Adversaries.
type Adversary interface {
	// Run attacks until ctx ends (the end of the run). It must return
	// promptly then; the engine waits for it.
	Run(ctx context.Context, env AttackEnv) error
}

// AttackEnv is what an adversary works with.
type AttackEnv struct {
	// Attackers are the adversary's hosts with their device keys, already
	// connected to their targets.
	Attackers []Attacker
	// Network and Topic are the mesh's network name and the honest topic.
	Network, Topic string
	// Honest are the honest nodes' device IDs, by index.
	Honest []identity.DeviceID
	Spec   AdversarySpec
	Rand   *rand.Rand
	// Targets are, per attacker host, the honest peers it is linked to.
	Targets map[peer.ID][]peer.ID
	// Payments is set in a scenario with payments.
	Payments *payEnv
	// Object waits for the scenario's rollout object to be shared and
	// returns what is public of it; false when the run ends first or the
	// scenario has no rollout.
	Object func(ctx context.Context) (*ObjectFacts, bool)
}

// Attacker is one hostile host.
type Attacker struct {
	Host host.Host
	Key  *identity.PrivateKey
}

// Adversaries maps a scenario's adversary type to its implementation.
var adversaryTypes = map[string]func() Adversary{
	"spam-no-pow":       func() Adversary { return spam{signature: true} },
	"spam-pow":          func() Adversary { return spam{signature: true, pow: true} },
	"invalid-signature": func() Adversary { return spam{signature: false} },
	"covert-flash":      func() Adversary { return sybil{silence: true} },
	"eclipse":           func() Adversary { return sybil{silence: true} },
	"eclipse-exhaust":   func() Adversary { return exhaust{} },
	"censor":            func() Adversary { return sybil{censor: true} },
	"sybil-swarm":       func() Adversary { return sybil{silence: true} },
	"cold-boot":         func() Adversary { return sybil{silence: true} },
	"replay":            func() Adversary { return replay{} },
	"freeloader":        func() Adversary { return freeloader{} },
	"bad-chunks":        func() Adversary { return badChunks{} },
	"drip-chunks":       func() Adversary { return dripChunks{} },
	"inv-flood":         func() Adversary { return invFlood{} },
}

// AdversaryTypes lists the known adversary types, sorted.
func AdversaryTypes() []string {
	var out []string
	for k := range adversaryTypes {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// spam floods the topic from every attacker at Rate envelopes per second,
// correctly signed by the attacker's own key: without proof of work
// ("spam-no-pow"), with WorkBits of it ("spam-pow": below the topic's
// target it is low-work spam, at or above it valid spam that only the
// per-sender rate limit holds), or with a broken signature
// ("invalid-signature"). The honest nodes must score and ban the
// attackers without losing honest traffic.
type spam struct {
	signature bool
	pow       bool // mint Spec.WorkBits
}

func (s spam) Run(ctx context.Context, env AttackEnv) error {
	return eachAttacker(env, func(i int, a Attacker) error { return s.flood(ctx, env, i, a) })
}

// eachAttacker runs attack for every attacker at once and returns the
// first error once all have returned.
func eachAttacker(env AttackEnv, attack func(i int, a Attacker) error) error {
	errs := make(chan error, len(env.Attackers))
	for i, a := range env.Attackers {
		go func() { errs <- attack(i, a) }()
	}
	var first error
	for range env.Attackers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// relay registers the attacker's validator on the honest topic, which
// decides what it forwards (Accept forwards; Ignore drops, unpenalised on
// either side), and joins the topic as a relay: in the mesh, forwarding,
// with no subscriber to feed. Call leave when done.
func relay(ps *pubsub.PubSub, env AttackEnv, v pubsub.ValidatorEx) (t *pubsub.Topic, leave func(), err error) {
	name := node.PubSubTopic(env.Network, env.Topic)
	if err := ps.RegisterTopicValidator(name, v); err != nil {
		return nil, nil, err
	}
	if t, err = ps.Join(name); err != nil {
		return nil, nil, err
	}
	stop, err := t.Relay()
	if err != nil {
		t.Close()
		return nil, nil, err
	}
	return t, func() { stop(); t.Close() }, nil
}

func (s spam) flood(ctx context.Context, env AttackEnv, i int, a Attacker) error {
	ps, err := pubsub.NewGossipSub(ctx, a.Host, pubsub.WithMessageIdFn(gossip.PubSubMessageID), pubsub.WithNoAuthor(), pubsub.WithFloodPublish(true))
	if err != nil {
		return err
	}
	t, err := ps.Join(node.PubSubTopic(env.Network, env.Topic))
	if err != nil {
		return err
	}
	defer t.Close()
	sub, err := t.Subscribe()
	if err != nil {
		return err
	}
	defer sub.Cancel()
	tick := time.NewTicker(time.Duration(float64(time.Second) / env.Spec.Rate))
	defer tick.Stop()
	for seq := uint64(1); ; seq++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		e := &gossip.Envelope{Network: gossip.NetworkFromName(env.Network), Time: time.Now(), Seq: seq, Topic: env.Topic,
			Sender: a.Key.DeviceID(), Payload: fmt.Appendf(nil, "spam %d/%d", i, seq)}
		if s.pow {
			if err := antispam.MintProofOfWork(ctx, e, env.Spec.WorkBits, 1); err != nil {
				return nil // only ctx ends a mint this small
			}
		}
		raw, _, err := e.Seal(a.Key)
		if err != nil {
			return err
		}
		if !s.signature {
			raw[len(raw)-1] ^= 1
		}
		if err := t.Publish(ctx, raw); err != nil && ctx.Err() == nil {
			return err
		}
	}
}

package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bitmesh/bitmesh/internal/testwait"
)

// attack is a hostile peer's way of building its next envelope.
type attack struct {
	name     string
	perRound int
	envelope func(t *testing.T, key *identity.PrivateKey, seq uint64, now time.Time) []byte
}

func sealedWith(t *testing.T, key *identity.PrivateKey, seq uint64, now time.Time, target uint8, mutate func([]byte)) []byte {
	t.Helper()
	env := &gossip.Envelope{Network: gossip.NetworkFromName(DefaultNetwork), Time: now, Seq: seq, Topic: "alerts/door", Payload: fmt.Appendf(nil, "spam %d", seq)}
	if target > 0 {
		env.Sender = key.DeviceID()
		if err := antispam.MintProofOfWork(context.Background(), env, target, 1); err != nil {
			t.Fatal(err)
		}
	}
	raw, _, err := env.Seal(key)
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(raw)
	}
	return raw
}

var attacks = []attack{
	{"flood without proof of work", 5, func(t *testing.T, key *identity.PrivateKey, seq uint64, now time.Time) []byte {
		return sealedWith(t, key, seq, now, 0, nil)
	}},
	{"bad signatures", 1, func(t *testing.T, key *identity.PrivateKey, seq uint64, now time.Time) []byte {
		return sealedWith(t, key, seq, now, 8, func(raw []byte) { raw[len(raw)-1] ^= 1 })
	}},
	{"replays of old envelopes", 5, func(t *testing.T, key *identity.PrivateKey, seq uint64, now time.Time) []byte {
		return sealedWith(t, key, seq, now.Add(-10*time.Minute), 8, nil)
	}},
}

// TestMisbehavingPeersAreBanned runs three honest nodes in a line
// (publisher — victim — listener) and three hostile GossipSub peers attached
// to the victim: one floods without proof of work, one sends bad
// signatures, one replays old envelopes. Each must be banned and
// disconnected while every honest message reaches both honest receivers,
// and the bans must survive a restart of the victim.
func TestMisbehavingPeersAreBanned(t *testing.T) {
	const topic = "alerts/door"
	cfg := func(dataDir string, bootstrap []string) Config {
		c := LocalConfig()
		c.Work = antispam.DifficultyConfig{Topics: map[string]uint8{"alerts/#": 8}}
		c.DataDir, c.BootstrapPeers = dataDir, bootstrap
		return c
	}
	victimDir := t.TempDir()
	publisher := startNode(t, cfg("", nil))
	victim := startNode(t, cfg(victimDir, bootstrapFrom(publisher)))
	listener := startNode(t, cfg("", bootstrapFrom(victim)))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var subs []*Subscription
	for _, n := range []*Node{victim, listener} {
		s, err := n.Subscribe(topic)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Cancel()
		subs = append(subs, s)
	}
	waitForTopicPeers(t, victim, topic, 1)
	// Until the victim's mesh forms (a GossipSub heartbeat), it may not
	// forward the publisher's messages to the listener, and a mesh peer
	// grafted later is not offered them by gossip either. Warm the path up
	// so that every honest message below must arrive.
	const warmUp = "warm-up"
	testwait.For(t, 20*time.Second, 50*time.Millisecond, func() error {
		if _, err := publisher.Publish(ctx, topic, []byte(warmUp), WithMinPeers(1)); err != nil {
			return err
		}
		wctx, wcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer wcancel()
		for {
			m, err := subs[1].Next(wctx)
			if err != nil {
				return errors.New("the publisher's warm-up messages do not reach the listener yet")
			}
			if string(m.Payload) == warmUp {
				return nil
			}
		}
	})

	rawCtx, rawCancel := context.WithCancel(ctx)
	defer rawCancel()
	hostile := make([]*rawPeer, len(attacks))
	keys := make([]*identity.PrivateKey, len(attacks))
	for i := range attacks {
		hostile[i] = newRawPeer(t, rawCtx, DefaultNetwork, topic, victim)
		keys[i], _ = identity.Generate()
	}
	waitForTopicPeers(t, victim, topic, 1+len(attacks))

	banned := func(p peer.ID) bool {
		bans, err := victim.Bans()
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(bans, func(b antispam.Ban) bool { return b.Subject == antispam.PeerSubject(p) })
	}
	sent := 0
	seq := uint64(0)
	for round := 0; ; round++ {
		if round == 40 {
			t.Fatalf("not every attacker banned after %d rounds; bans: %v", round, must(victim.Bans()))
		}
		for i, a := range attacks {
			if banned(hostile[i].h.ID()) {
				continue
			}
			for range a.perRound {
				seq++
				// Publish errors are expected once the victim hangs up.
				_ = hostile[i].topic.Publish(ctx, a.envelope(t, keys[i], seq, time.Now()))
			}
		}
		if _, err := publisher.Publish(ctx, topic, fmt.Appendf(nil, "honest %d", sent), WithMinPeers(1)); err != nil {
			t.Fatal(err)
		}
		sent++
		if !slices.ContainsFunc(hostile, func(r *rawPeer) bool { return !banned(r.h.ID()) }) {
			break
		}
		time.Sleep(50 * time.Millisecond) // let async validation catch up; the loop is bounded
	}

	// Every honest message arrives at both honest receivers.
	for i, s := range subs {
		got := map[string]bool{}
		for len(got) < sent {
			m, err := s.Next(ctx)
			if err != nil {
				t.Fatalf("receiver %d after %d of %d honest messages: %v", i, len(got), sent, err)
			}
			if m.From != publisher.DeviceID() {
				t.Fatalf("receiver %d got a message from %s", i, m.From)
			}
			if string(m.Payload) != warmUp {
				got[string(m.Payload)] = true
			}
		}
	}
	// The device that signed the work-less flood is banned too (its
	// signatures are valid, so the bad content is provably its own); the
	// devices whose envelopes were forged or replayed are not to blame.
	deviceBanned := func(k *identity.PrivateKey) bool {
		return slices.ContainsFunc(must(victim.Bans()), func(b antispam.Ban) bool { return b.Subject == antispam.DeviceSubject(k.DeviceID()) })
	}
	testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		if !deviceBanned(keys[0]) {
			return fmt.Errorf("the flooding device is not banned; bans: %v", must(victim.Bans()))
		}
		return nil
	})
	if deviceBanned(keys[1]) || deviceBanned(keys[2]) {
		t.Errorf("a device was banned for content it did not sign or replays of it: %v", must(victim.Bans()))
	}
	// The honest peers have clean records at the victim.
	for _, sc := range must(victim.Scores()) {
		if sc.Subject == antispam.PeerSubject(publisher.PeerID()) || sc.Subject == antispam.PeerSubject(listener.PeerID()) {
			t.Errorf("honest peer scored: %+v", sc)
		}
	}
	// Each attacker is disconnected and cannot come back.
	for i, r := range hostile {
		testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
			if victim.Host().Network().Connectedness(r.h.ID()) == network.Connected {
				return fmt.Errorf("%s still connected", attacks[i].name)
			}
			return nil
		})
		assertRefused(t, ctx, r, victim, attacks[i].name)
	}

	// The bans survive a restart of the victim.
	victim.Close()
	restarted := startNode(t, cfg(victimDir, bootstrapFrom(publisher)))
	for i, r := range hostile {
		if !slices.ContainsFunc(must(restarted.Bans()), func(b antispam.Ban) bool { return b.Subject == antispam.PeerSubject(r.h.ID()) }) {
			t.Errorf("%s: ban lost in the restart", attacks[i].name)
		}
		assertRefused(t, ctx, r, restarted, attacks[i].name)
	}
}

// assertRefused has r dial n and checks that n's connection gater does not
// let the connection stand. The dial itself may report success: the
// dialer can finish its side of the handshake before n hangs up.
func assertRefused(t *testing.T, ctx context.Context, r *rawPeer, n *Node, name string) {
	t.Helper()
	_ = r.h.Connect(ctx, peer.AddrInfo{ID: n.PeerID(), Addrs: n.Host().Addrs()})
	testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n.Host().Network().Connectedness(r.h.ID()) == network.Connected ||
			r.h.Network().Connectedness(n.PeerID()) == network.Connected {
			return fmt.Errorf("%s is connected again after its ban", name)
		}
		return nil
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestPublishSaysWhyItWasRefused: a node that banned its own device gets
// the reason from Publish, not only GossipSub's "validation ignored".
func TestPublishSaysWhyItWasRefused(t *testing.T) {
	n, err := New(LocalConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Ban(antispam.DeviceSubject(n.DeviceID()), time.Hour, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Publish(ctx, "t", []byte("x")); !errors.Is(err, antispam.ErrBanned) {
		t.Fatalf("publish by a banned device: %v, want antispam.ErrBanned", err)
	}
}

package node

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bitmesh/bitmesh/internal/testwait"
)

func startNode(t testing.TB, cfg Config, opts ...Option) *Node {
	t.Helper()
	n, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// startPeer starts a node with cfg that bootstraps from of.
func startPeer(t testing.TB, of *Node, cfg Config, opts ...Option) *Node {
	t.Helper()
	cfg.BootstrapPeers = bootstrapFrom(of)
	return startNode(t, cfg, opts...)
}

func bootstrapFrom(n *Node) []string {
	var out []string
	for _, a := range n.Addrs() {
		out = append(out, a.String())
	}
	return out
}

func waitForTopicPeers(t testing.TB, n *Node, topic string, want int) {
	t.Helper()
	testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got := len(n.TopicPeers(topic)); got < want {
			return fmt.Errorf("%d topic peers, want %d", got, want)
		}
		return nil
	})
}

func TestPublishSubscribeTwoNodes(t *testing.T) {
	a := startNode(t, LocalConfig())
	b := startPeer(t, a, LocalConfig())

	sub, err := b.Subscribe("sensors/temp")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const count = 50
	for i := range count {
		if _, err := a.Publish(ctx, "sensors/temp", fmt.Appendf(nil, "reading %d", i), WithMinPeers(1)); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]bool{}
	for len(got) < count {
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(got), err)
		}
		if m.From != a.DeviceID() {
			t.Fatalf("message from %s, want %s", m.From, a.DeviceID())
		}
		if m.Local || m.ReceivedFrom != a.PeerID() {
			t.Fatalf("message received from %s (local %v), want %s", m.ReceivedFrom, m.Local, a.PeerID())
		}
		got[string(m.Payload)] = true
	}
	// Publishing node a never checked its own signatures.
	if s := a.ValidatorStats(); s.SignatureChecks != 0 {
		t.Errorf("publisher made %d signature checks for its own envelopes", s.SignatureChecks)
	}
	if s := b.ValidatorStats(); s.SignatureChecks != count {
		t.Errorf("subscriber made %d signature checks, want %d", s.SignatureChecks, count)
	}
}

// rawPeer is a plain GossipSub peer with no bitmesh validation: it can
// inject arbitrary bytes into a bitmesh topic, as a faulty or hostile
// implementation would.
type rawPeer struct {
	h     host.Host
	ps    *pubsub.PubSub
	topic *pubsub.Topic
}

func newRawPeer(t *testing.T, ctx context.Context, network, topic string, target *Node) *rawPeer {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithMessageIdFn(gossip.PubSubMessageID), pubsub.WithNoAuthor(), pubsub.WithFloodPublish(true))
	if err != nil {
		t.Fatal(err)
	}
	tp, err := ps.Join("bitmesh/" + network + "/" + topic)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := tp.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Cancel(); tp.Close() })
	if err := h.Connect(ctx, peer.AddrInfo{ID: target.PeerID(), Addrs: target.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	return &rawPeer{h: h, ps: ps, topic: tp}
}

func sealed(t *testing.T, key *identity.PrivateKey, network, topic, payload string, now time.Time) []byte {
	t.Helper()
	env := &gossip.Envelope{Network: gossip.NetworkFromName(network), Time: now, Seq: 1, Topic: topic, Payload: []byte(payload)}
	raw, _, err := env.Seal(key)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestInjectedForgeriesNeverDelivered has a raw GossipSub peer inject a
// valid envelope, then a tampered one and one from another network, into a
// node's topic. The node must deliver the valid one and reject both others.
func TestInjectedForgeriesNeverDelivered(t *testing.T) {
	const topic = "sensors/door"
	var rejects []error
	results := make(chan gossip.Result, 16)
	n := startNode(t, LocalConfig(), WithObserver(func(_ peer.ID, _ string, r gossip.Result) { results <- r }))
	sub, err := n.Subscribe(topic)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The raw peer's pubsub lives for ctx; cancel before goleak looks.
	rawCtx, rawCancel := context.WithCancel(ctx)
	defer rawCancel()
	evil := newRawPeer(t, rawCtx, DefaultNetwork, topic, n)
	waitForTopicPeers(t, n, topic, 1)
	testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		if len(evil.topic.ListPeers()) == 0 {
			return errors.New("raw peer does not see the node on the topic")
		}
		return nil
	})

	signer, _ := identity.Generate()
	now := time.Now()
	tampered := sealed(t, signer, DefaultNetwork, topic, "door open", now)
	tampered[len(tampered)-identity.SignatureSize-10] ^= 0x01 // a payload byte ("door open")
	otherNet := sealed(t, signer, "othernet", topic, "door open", now)
	valid := sealed(t, signer, DefaultNetwork, topic, "door closed", now)

	// The valid envelope goes first: the first forgery gets the raw peer
	// banned and disconnected (a bad signature scores 100), after which
	// nothing more of it would be read.
	for _, raw := range [][]byte{valid, tampered, otherNet} {
		if err := evil.topic.Publish(ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	m, err := sub.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Payload) != "door closed" || m.From != signer.DeviceID() {
		t.Fatalf("delivered %q from %s, want the valid envelope", m.Payload, m.From)
	}
	for len(rejects) < 2 {
		select {
		case r := <-results:
			if r.Verdict == gossip.Reject {
				rejects = append(rejects, r.Err)
			}
		case <-ctx.Done():
			t.Fatalf("saw %d rejections, want 2", len(rejects))
		}
	}
	// Validation is concurrent: the two rejections may come in either order.
	joined := errors.Join(rejects...)
	if !errors.Is(joined, gossip.ErrBadSignature) || !errors.Is(joined, gossip.ErrWrongNetwork) {
		t.Errorf("rejections = %v, want a bad signature and a wrong network", rejects)
	}
	// Nothing else is queued for the subscriber.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if m, err := sub.Next(short); err == nil {
		t.Fatalf("unexpected delivery %q", m.Payload)
	}
	// Both refusals are counted by reason.
	if d := n.Drops(); d["bad-signature"] != 1 || d["wrong-network"] != 1 {
		t.Errorf("drops %v, want one bad-signature and one wrong-network", d)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
	}{
		{"empty network", func(c *Config) { c.Network = "" }},
		{"bad listen addr", func(c *Config) { c.ListenAddrs = []string{"not-a-multiaddr"} }},
		{"bootstrap without peer id", func(c *Config) { c.BootstrapPeers = []string{"/ip4/127.0.0.1/tcp/1"} }},
		{"negative min peers", func(c *Config) { c.MinPeers = -1 }},
		{"zero dial timeout", func(c *Config) { c.DialTimeout = 0 }},
		{"watermarks inverted", func(c *Config) { c.ConnLow, c.ConnHigh = 10, 5 }},
		{"envelope size too large", func(c *Config) { c.MaxEnvelopeSize = gossip.MaxEnvelopeSize + 1 }},
		{"zero message age", func(c *Config) { c.MaxMessageAge = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := LocalConfig()
			tc.mutate(&c)
			if err := c.Validate(); err == nil {
				t.Fatal("Validate accepted a bad config")
			}
			if _, err := New(c); err == nil {
				t.Fatal("New accepted a bad config")
			}
		})
	}
	for name, c := range map[string]Config{"default": DefaultConfig(), "lowmem": LowMemoryConfig(), "local": LocalConfig()} {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestLifecycleErrors(t *testing.T) {
	n, err := New(LocalConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Publish(context.Background(), "t", nil); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("publish before start: %v", err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); !errors.Is(err, ErrAlreadyStarted) {
		t.Fatalf("second start: %v", err)
	}
	if _, err := n.Publish(context.Background(), "bad topic", nil); err == nil {
		t.Fatal("publish on a topic with a space succeeded")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := n.Subscribe("t"); !errors.Is(err, ErrClosed) {
		t.Fatalf("subscribe after close: %v", err)
	}
}

func TestKeyPersistsInDataDir(t *testing.T) {
	cfg := LocalConfig()
	cfg.DataDir = t.TempDir()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a.DeviceID() != b.DeviceID() {
		t.Fatal("a second node on the same data dir has another identity")
	}
	if got, err := identity.DeviceIDFromPeerID(a.PeerID()); err != nil || got != a.DeviceID() {
		t.Fatalf("peer ID names %v (%v), want %s", got, err, a.DeviceID())
	}
}

package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bitmesh/bitmesh/internal/testwait"
)

// resultLog collects a node's validation results for a test to wait on.
type resultLog struct {
	mu  sync.Mutex
	all []gossip.Result
}

func (l *resultLog) observe(_ peer.ID, _ string, r gossip.Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, r)
}

// count returns how many results for id had verdict v and wrap want
// (nil: any error).
func (l *resultLog) count(id gossip.ID, v gossip.Verdict, want error) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.all {
		if r.ID == id && r.Verdict == v && (want == nil || errors.Is(r.Err, want)) {
			n++
		}
	}
	return n
}

// TestResignedEnvelopeDeliveredOnce injects one envelope three ways into a
// two-node mesh through real GossipSub peers: a forged copy first (from a
// hostile peer, to node a), then the genuine envelope, then the same
// envelope signed again with fresh BIP-340 randomness (same ID, other valid
// signature bytes), both sent by a relay to both nodes. Each node must
// deliver the ID exactly once: the forgery must not shadow the genuine
// copy, and the re-signed copy must not be delivered or forwarded a second
// time (PROTOCOL.md §9).
func TestResignedEnvelopeDeliveredOnce(t *testing.T) {
	const topic = "sensors/door"
	var logA, logB resultLog
	a := startNode(t, LocalConfig(), WithObserver(logA.observe))
	b := startPeer(t, a, LocalConfig(), WithObserver(logB.observe))
	subs := make(map[string]*Subscription)
	for name, n := range map[string]*Node{"a": a, "b": b} {
		sub, err := n.Subscribe(topic)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Cancel()
		subs[name] = sub
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rawCtx, rawCancel := context.WithCancel(ctx)
	defer rawCancel()
	// The relay sends every copy to both nodes itself: each node must
	// deliver the ID once whatever reaches it, without the test depending
	// on when GossipSub grafts a and b into each other's mesh.
	evil := newRawPeer(t, rawCtx, DefaultNetwork, topic, a)
	relay := newRawPeer(t, rawCtx, DefaultNetwork, topic, a)
	if err := relay.h.Connect(ctx, peer.AddrInfo{ID: b.PeerID(), Addrs: b.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitForTopicPeers(t, a, topic, 3)
	waitForTopicPeers(t, b, topic, 2)
	for _, r := range []*rawPeer{evil, relay} {
		want := 1
		if r == relay {
			want = 2
		}
		testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
			if len(r.topic.ListPeers()) < want {
				return errors.New("raw peer does not see the nodes on the topic")
			}
			return nil
		})
	}

	signer, _ := identity.Generate()
	env := &gossip.Envelope{Network: gossip.NetworkFromName(DefaultNetwork), Time: time.Now(), Seq: 1, Topic: topic, Payload: []byte("door open")}
	first, id, err := env.Seal(signer)
	if err != nil {
		t.Fatal(err)
	}
	second, id2, err := env.Seal(signer)
	if err != nil {
		t.Fatal(err)
	}
	if id != id2 || string(first) == string(second) {
		t.Fatal("want one ID under two different signatures")
	}
	forged := []byte(string(first))
	forged[len(forged)-1] ^= 0x01

	publish := func(r *rawPeer, raw []byte) {
		t.Helper()
		if err := r.topic.Publish(ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	waitResult := func(l *resultLog, v gossip.Verdict, want error) {
		t.Helper()
		testwait.For(t, 15*time.Second, 10*time.Millisecond, func() error {
			if l.count(id, v, want) == 0 {
				l.mu.Lock()
				defer l.mu.Unlock()
				return fmt.Errorf("no %v (%v) result for %s yet; results so far: %v", v, want, id, l.all)
			}
			return nil
		})
	}
	publish(evil, forged)
	waitResult(&logA, gossip.Reject, gossip.ErrBadSignature)
	publish(relay, first)
	waitResult(&logA, gossip.Accept, nil)
	waitResult(&logB, gossip.Accept, nil)
	publish(relay, second)
	waitResult(&logA, gossip.Ignore, gossip.ErrDuplicate)
	waitResult(&logB, gossip.Ignore, gossip.ErrDuplicate)

	for name, sub := range subs {
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("node %s: %v", name, err)
		}
		if m.ID != id || string(m.Payload) != "door open" {
			t.Fatalf("node %s delivered %s %q, want the genuine envelope", name, m.ID, m.Payload)
		}
		short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
		m, err = sub.Next(short)
		cancelShort()
		if err == nil {
			t.Errorf("node %s delivered %s %q a second time", name, m.ID, m.Payload)
		}
	}
	// Neither node accepted the ID twice, so neither forwarded the
	// re-signed copy.
	for name, l := range map[string]*resultLog{"a": &logA, "b": &logB} {
		if n := l.count(id, gossip.Accept, nil); n != 1 {
			t.Errorf("node %s accepted the ID %d times, want 1", name, n)
		}
	}
}

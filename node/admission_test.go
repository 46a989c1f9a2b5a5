package node

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/identity"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/bitmesh/bitmesh/internal/testwait"
)

// permissioned is a small permissioned mesh: one operator, certified
// devices, and helpers to start nodes in it.
type permissioned struct {
	t  *testing.T
	op *identity.PrivateKey
}

func (p permissioned) config(key *identity.PrivateKey, certified bool, bootstrap []string) Config {
	c := LocalConfig()
	c.Key = key
	c.Operators = []string{p.op.DeviceID().String()}
	c.AdmissionTimeout = time.Second
	c.BootstrapPeers = bootstrap
	if certified {
		now := time.Now()
		cert, err := identity.IssueCertificate(p.op, identity.Certificate{
			Network: DefaultNetwork, Device: key.DeviceID(), Roles: []string{"publish"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), Serial: 1,
		})
		if err != nil {
			p.t.Fatal(err)
		}
		if c.Certificate, err = cert.Encode(); err != nil {
			p.t.Fatal(err)
		}
	}
	return c
}

func newKey(t *testing.T) *identity.PrivateKey {
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// collect reads a subscription in the background; got() returns what
// arrived so far.
func collect(t *testing.T, ctx context.Context, s *Subscription) func() []Message {
	ch := make(chan Message, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := s.Next(ctx)
			if err != nil {
				return
			}
			ch <- m
		}
	}()
	var got []Message
	t.Cleanup(func() { s.Cancel(); <-done })
	return func() []Message {
		for {
			select {
			case m := <-ch:
				got = append(got, m)
			default:
				return got
			}
		}
	}
}

func fromDevice(ms []Message, d identity.DeviceID) int {
	n := 0
	for _, m := range ms {
		if m.From == d {
			n++
		}
	}
	return n
}

// TestPermissionedMesh: in a permissioned mesh (publisher A — hub B —
// device C, all certified) an uncertified node U attached to B gets none of
// its messages delivered anywhere and is disconnected; after the operator
// revokes C, C is cut off within one gossip round and nothing it sends is
// delivered.
func TestPermissionedMesh(t *testing.T) {
	const topic = "plant/line1"
	p := permissioned{t: t, op: newKey(t)}
	ka, kb, kc, ku := newKey(t), newKey(t), newKey(t), newKey(t)
	a := startNode(t, p.config(ka, true, nil))
	b := startNode(t, p.config(kb, true, bootstrapFrom(a)))
	c := startNode(t, p.config(kc, true, bootstrapFrom(b)))
	uCfg := LocalConfig() // an open-mode node: it publishes whatever it likes
	uCfg.Key, uCfg.BootstrapPeers = ku, bootstrapFrom(b)
	u := startNode(t, uCfg)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	receivers := map[string]func() []Message{}
	for name, n := range map[string]*Node{"A": a, "B": b, "C": c} {
		s, err := n.Subscribe(topic)
		if err != nil {
			t.Fatal(err)
		}
		receivers[name] = collect(t, ctx, s)
	}
	// Certificates travel on connect.
	testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		for _, n := range []*Node{a, b, c} {
			for _, d := range []identity.DeviceID{a.DeviceID(), b.DeviceID(), c.DeviceID()} {
				if !n.adm.certified(time.Now(), d) {
					return fmt.Errorf("%s does not know %s's certificate yet", n.DeviceID(), d)
				}
			}
		}
		return nil
	})
	waitForTopicPeers(t, b, topic, 2)
	// Until B's mesh forms (a GossipSub heartbeat), B may not forward C's
	// messages to A; warm the path up so the counts below are exact.
	testwait.For(t, 20*time.Second, 100*time.Millisecond, func() error {
		if _, err := c.Publish(ctx, topic, []byte("warm-up")); err != nil {
			return err
		}
		if fromDevice(receivers["A"](), c.DeviceID()) == 0 {
			return errors.New("C's warm-up messages do not reach A yet")
		}
		return nil
	})
	warm := map[string]int{}
	for name, got := range receivers {
		warm[name] = fromDevice(got(), c.DeviceID())
	}

	// U publishes; every certified node ignores it.
	for i := range 10 {
		if _, err := u.Publish(ctx, topic, fmt.Appendf(nil, "uncertified %d", i), WithMinPeers(1)); err != nil {
			t.Fatal(err)
		}
	}
	// C's messages flow, and arrive after U's at B (one hop from both).
	for i := range 3 {
		if _, err := c.Publish(ctx, topic, fmt.Appendf(nil, "certified %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		for name, got := range receivers {
			if n := fromDevice(got(), c.DeviceID()) - warm[name]; n < 3 {
				return fmt.Errorf("%s has %d of C's 3 messages", name, n)
			}
		}
		return nil
	})
	for name, got := range receivers {
		if n := fromDevice(got(), u.DeviceID()); n != 0 {
			t.Errorf("%s delivered %d messages of the uncertified node", name, n)
		}
	}
	testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		if b.Host().Network().Connectedness(u.PeerID()) == network.Connected {
			return errors.New("the uncertified node is still connected to B")
		}
		return nil
	})

	// The operator revokes C; A announces it. Within one GossipSub round
	// (the heartbeat is 1 s) every node has applied it and dropped C.
	rev, err := identity.IssueRevocation(p.op, identity.Revocation{
		Network: DefaultNetwork, Device: c.DeviceID(), Time: time.Now(), Reason: "stolen",
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := a.Announce(ctx, raw); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, time.Second, 5*time.Millisecond, func() error {
		for _, n := range []*Node{a, b} {
			if n.adm.certified(time.Now(), c.DeviceID()) {
				return fmt.Errorf("%s still admits C", n.DeviceID())
			}
		}
		if b.Host().Network().Connectedness(c.PeerID()) == network.Connected {
			return errors.New("B is still connected to C")
		}
		return nil
	})
	t.Logf("revocation applied mesh-wide and C disconnected %v after the announcement", time.Since(start))
	// C's redials are refused at the handshake: B never holds a connection
	// to it (without the gater B would, until AdmissionTimeout).
	_ = c.Connect(ctx, bootstrapFrom(b)[0])
	if b.Host().Network().Connectedness(c.PeerID()) == network.Connected {
		t.Error("the revoked device got a connection to B again")
	}
	before := map[string]int{}
	for name, got := range receivers {
		before[name] = fromDevice(got(), c.DeviceID())
	}
	for i := range 3 {
		_, _ = c.Publish(ctx, topic, fmt.Appendf(nil, "revoked %d", i))
	}
	// A barrier: A's message reaches B after anything C could still have sent.
	if _, err := a.Publish(ctx, topic, []byte("barrier"), WithMinPeers(1)); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		if fromDevice(receivers["B"](), a.DeviceID()) == 0 {
			return errors.New("barrier not at B yet")
		}
		return nil
	})
	for _, name := range []string{"A", "B"} {
		if n := fromDevice(receivers[name](), c.DeviceID()); n != before[name] {
			t.Errorf("%s delivered %d messages of C after its revocation", name, n-before[name])
		}
	}
}

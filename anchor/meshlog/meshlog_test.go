package meshlog_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/anchor/meshlog"
	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/node"

	"github.com/bitmesh/bitmesh/internal/testwait"
)

type logNode struct {
	n   *node.Node
	log *meshlog.MeshLog
}

// startLogNodes starts count nodes logging topic, each connected to all
// the others, and waits until every node sees the others on the log topic.
func startLogNodes(t *testing.T, count int, topic string) []logNode {
	t.Helper()
	var out []logNode
	for i := range count {
		lc := logConfig(topic) // the tests ask for checkpoints
		lc.CheckpointEvery = 1 << 20
		cfg := node.LocalConfig()
		if i == 0 {
			cfg.Key = keyForFirst
		}
		for _, prev := range out { // a full mesh
			for _, a := range prev.n.Addrs() {
				cfg.BootstrapPeers = append(cfg.BootstrapPeers, a.String())
			}
		}
		out = append(out, startLog(t, lc, cfg))
	}
	for _, ln := range out {
		for _, tp := range []string{topic, meshlog.Topic} {
			testwait.For(t, 15*time.Second, 20*time.Millisecond, func() error {
				if got := len(ln.n.TopicPeers(tp)); got < count-1 {
					return fmt.Errorf("%s: %d topic peers on %s, want %d", ln.n.DeviceID(), got, tp, count-1)
				}
				return nil
			})
		}
	}
	// No wait for the mesh: the node floods its own publishes to every
	// topic peer, which these tests wait for above.
	return out
}

func TestReceiptFromCosignedCheckpoint(t *testing.T) {
	const topic = "sensors/temp"
	nodes := startLogNodes(t, 3, topic)
	a := nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ids []gossip.ID
	for i := range 20 {
		id, err := a.n.Publish(ctx, topic, fmt.Appendf(nil, "reading %d", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// Every node logs what it accepted, in its own order.
	for _, ln := range nodes {
		testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
			if got := ln.log.Logs()[0].Size; got != 20 {
				return fmt.Errorf("%s logged %d entries, want 20", ln.n.DeviceID(), got)
			}
			return nil
		})
	}
	if _, err := a.log.Receipt(topic, ids[3]); !errors.Is(err, meshlog.ErrNoCheckpoint) {
		t.Fatalf("receipt before any checkpoint: %v, want ErrNoCheckpoint", err)
	}
	if _, err := a.log.Checkpoint(ctx, topic); err != nil {
		t.Fatal(err)
	}
	witnesses := []identity.DeviceID{nodes[1].n.DeviceID(), nodes[2].n.DeviceID()}
	testwait.For(t, 15*time.Second, 20*time.Millisecond, func() error {
		if got := a.log.Logs()[0].Cosigners; len(got) != 2 {
			return fmt.Errorf("checkpoint cosigned by %v, want both witnesses", got)
		}
		return nil
	})
	origin := meshlog.Origin(a.n.NetworkName(), a.n.DeviceID(), topic)
	for i, id := range ids {
		r, err := a.log.Receipt(topic, id)
		if err != nil {
			t.Fatal(err)
		}
		env, err := anchor.VerifyReceipt(r, a.n.DeviceID(), origin, witnesses, 2)
		if err != nil {
			t.Fatalf("receipt %d: %v", i, err)
		}
		if want := fmt.Sprintf("reading %d", i); string(env.Payload) != want {
			t.Fatalf("receipt %d holds %q, want %q", i, env.Payload, want)
		}
	}
	// A second checkpoint extends the first: witnesses check consistency
	// over the stream protocol before cosigning it.
	for i := range 5 {
		if _, err := a.n.Publish(ctx, topic, fmt.Appendf(nil, "more %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got := a.log.Logs()[0].Size; got != 25 {
			return fmt.Errorf("logged %d, want 25", got)
		}
		return nil
	})
	if _, err := a.log.Checkpoint(ctx, topic); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 15*time.Second, 20*time.Millisecond, func() error {
		info := a.log.Logs()[0]
		if info.Checkpoint != 25 || len(info.Cosigners) != 2 {
			return fmt.Errorf("checkpoint %d cosigned by %v, want 25 by both", info.Checkpoint, info.Cosigners)
		}
		return nil
	})
}

func TestEquivocatingLogBannedEverywhere(t *testing.T) {
	const topic = "sensors/door"
	key, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	// Node 0 is the log that will equivocate; the test holds its key.
	nodes := startLogNodesWithKey(t, 3, topic, key)
	evil, honest := nodes[0], nodes[1:]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 4 {
		if _, err := evil.n.Publish(ctx, topic, fmt.Appendf(nil, "open %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got := evil.log.Logs()[0].Size; got != 4 {
			return fmt.Errorf("logged %d, want 4", got)
		}
		return nil
	})
	if _, err := evil.log.Checkpoint(ctx, topic); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 15*time.Second, 20*time.Millisecond, func() error {
		if got := evil.log.Logs()[0].Cosigners; len(got) != 2 {
			return fmt.Errorf("cosigned by %v, want 2", got)
		}
		return nil
	})

	// The log signs a second tree of the same size and slips it to one
	// honest node through a plain GossipSub peer.
	origin := meshlog.Origin(evil.n.NetworkName(), key.DeviceID(), topic)
	fork := anchor.Checkpoint{Origin: origin, Size: 4, Root: [32]byte{1, 2, 3}}
	forked, err := anchor.SignCheckpoint(fork, key)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := meshlog.Message{Kind: meshlog.KindCheckpoint, Note: forked}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	env := &gossip.Envelope{Network: gossip.NetworkFromName(evil.n.NetworkName()), Time: time.Now(), Seq: 1, Topic: meshlog.Topic, Payload: payload}
	raw, _, err := env.Seal(key)
	if err != nil {
		t.Fatal(err)
	}
	injectVia(t, ctx, honest[0].n, meshlog.Topic, raw)

	for _, h := range honest {
		testwait.For(t, 15*time.Second, 20*time.Millisecond, func() error {
			if !h.log.Convicted(origin) {
				return fmt.Errorf("%s has not convicted the log", h.n.DeviceID())
			}
			bans, err := h.n.Bans()
			if err != nil {
				return err
			}
			for _, b := range bans {
				if b.Subject == antispam.DeviceSubject(key.DeviceID()) {
					return nil
				}
			}
			return fmt.Errorf("%s has not banned %s: %v", h.n.DeviceID(), key.DeviceID(), bans)
		})
	}
}

// startLogNodesWithKey is startLogNodes with node 0 on the given key.
func startLogNodesWithKey(t *testing.T, count int, topic string, key *identity.PrivateKey) []logNode {
	t.Helper()
	keyForFirst = key
	defer func() { keyForFirst = nil }()
	return startLogNodes(t, count, topic)
}

var keyForFirst *identity.PrivateKey

// injectVia publishes raw on topic from a plain GossipSub peer (no
// bitmesh validation) connected only to target.
func injectVia(t *testing.T, ctx context.Context, target *node.Node, topic string, raw []byte) {
	t.Helper()
	if err := rawPublisher(t, ctx, target, topic).tp.Publish(ctx, raw); err != nil {
		t.Fatal(err)
	}
}

// rawPub is a plain GossipSub peer (no bitmesh validation) joined to one
// bitmesh topic.
type rawPub struct {
	id peer.ID
	tp *pubsub.Topic
}

// rawPublisher connects a plain GossipSub peer to target only and waits
// until target is subscribed to topic.
func rawPublisher(t *testing.T, ctx context.Context, target *node.Node, topic string) rawPub {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	psCtx, psCancel := context.WithCancel(context.Background())
	t.Cleanup(psCancel)
	ps, err := pubsub.NewGossipSub(psCtx, h, pubsub.WithMessageIdFn(gossip.PubSubMessageID), pubsub.WithNoAuthor(), pubsub.WithFloodPublish(true), pubsub.WithPeerOutboundQueueSize(1024))
	if err != nil {
		t.Fatal(err)
	}
	tp, err := ps.Join("bitmesh/" + target.NetworkName() + "/" + topic)
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
	testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		if len(tp.ListPeers()) == 0 {
			return errors.New("target not subscribed yet")
		}
		return nil
	})
	return rawPub{h.ID(), tp}
}

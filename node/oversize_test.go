package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/bitmesh/bitmesh/internal/testwait"
)

// frame is one varint-length-prefixed RPC of size bytes, as GossipSub
// frames them.
func frame(size int) []byte {
	return append(binary.AppendUvarint(nil, uint64(size)), make([]byte, size)...)
}

// chunks splits b into reads of at most size bytes.
func chunks(b []byte, size int) [][]byte { return slices.Collect(slices.Chunk(b, size)) }

func TestRPCMeter(t *testing.T) {
	const max = 300
	overlong := bytes.Repeat([]byte{0x80}, 9) // nine bytes that all say "more follows"
	for _, tc := range []struct {
		name  string
		reads [][]byte
		want  int
	}{
		{"frames within the limit in one read", [][]byte{slices.Concat(frame(max), frame(10), frame(0))}, 0},
		{"frame at the limit byte by byte", chunks(frame(max), 1), 0},
		{"frames split across reads", chunks(slices.Concat(frame(200), frame(max), frame(1)), 7), 0},
		{"frame one over the limit", [][]byte{frame(max + 1)}, 1},
		{"oversize prefix alone", [][]byte{binary.AppendUvarint(nil, 1<<40)}, 1},
		{"oversize after good frames", chunks(slices.Concat(frame(max), frame(5), frame(max+1)), 64), 1},
		{"prefix longer than 63 bits", [][]byte{overlong}, 1},
		{"only the first oversize frame counts", [][]byte{slices.Concat(frame(max+1), frame(max+1))}, 1},
		{"prefix split over reads, then oversize", chunks(binary.AppendUvarint(nil, max+1000), 1), 1},
		{"incomplete prefix", [][]byte{{0xff, 0xff}}, 0},
		{"empty stream", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := 0
			m := &rpcMeter{max: max, onOversize: func() { got++ }}
			for _, r := range tc.reads {
				m.follow(r)
			}
			if got != tc.want {
				t.Fatalf("%d oversize RPCs reported, want %d", got, tc.want)
			}
		})
	}
}

// oversizeRPCSize is over the node's limit (maxRPCSize) by half.
const oversizeRPCSize = 3 * (1 << 20) / 2

// sendOversizeRPC opens a GossipSub stream from h to p and writes one RPC
// of oversizeRPCSize bytes, as a hostile or broken implementation would.
// It returns once the node has reset the stream.
func sendOversizeRPC(ctx context.Context, h host.Host, p peer.ID, proto protocol.ID) error {
	s, err := h.NewStream(ctx, p, proto)
	if err != nil {
		return err
	}
	defer s.Reset()
	if err := s.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	// The write fails once the node resets the stream; it never takes
	// the whole RPC, which is larger than the stream's receive window.
	_, _ = s.Write(frame(oversizeRPCSize))
	_, _ = s.Read(make([]byte, 1))
	return nil
}

// TestOversizeRPCsBanSender has a plain libp2p host speak GossipSub to a
// node with RPCs over the node's size limit, which pubsub drops without a
// word to any tracer. The node must score each one against the sender,
// ban and disconnect it, and keep delivering to an honest peer all along.
func TestOversizeRPCsBanSender(t *testing.T) {
	const topic = "sensors/oversize"
	victim := startNode(t, LocalConfig())
	honest := startPeer(t, victim, LocalConfig())
	sub, err := honest.Subscribe(topic)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	waitForTopicPeers(t, victim, topic, 1)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sent := 0
	delivered := func() {
		t.Helper()
		sent++
		want := fmt.Sprintf("reading %d", sent)
		if _, err := victim.Publish(ctx, topic, []byte(want), WithMinPeers(1)); err != nil {
			t.Fatal(err)
		}
		m, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Payload) != want {
			t.Fatalf("honest peer got %q, want %q", m.Payload, want)
		}
	}

	attacker, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	if err := attacker.Connect(ctx, peer.AddrInfo{ID: victim.PeerID(), Addrs: victim.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	proto := pubsub.GossipSubID_v11
	if !slices.Contains(victim.Host().Mux().Protocols(), proto) {
		t.Fatalf("node does not offer %s: %v", proto, victim.Host().Mux().Protocols())
	}
	subject := antispam.PeerSubject(attacker.ID())
	score := func() antispam.SubjectScore {
		scores, err := victim.Scores()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range scores {
			if s.Subject == subject {
				return s
			}
		}
		return antispam.SubjectScore{}
	}
	perRPC := antispam.DefaultScoreTable()[antispam.Oversize].Persistent

	// The first RPC is scored once, and the node carries on.
	if err := sendOversizeRPC(ctx, attacker, victim.PeerID(), proto); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		if s := score(); s.Score != perRPC || s.Banned {
			return fmt.Errorf("attacker scored %+v, want %d and no ban", s, perRPC)
		}
		return nil
	})
	delivered()

	// More of them get the sender banned and disconnected; a banned peer
	// cannot open another stream.
	for i := 0; i < 50 && !score().Banned; i++ {
		if err := sendOversizeRPC(ctx, attacker, victim.PeerID(), proto); err != nil {
			break
		}
		delivered()
	}
	testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		bans, err := victim.Bans()
		if err != nil {
			return err
		}
		for _, b := range bans {
			if b.Subject == subject {
				return nil
			}
		}
		return fmt.Errorf("attacker not banned; bans %v, score %+v", bans, score())
	})
	testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		if c := victim.Host().Network().ConnsToPeer(attacker.ID()); len(c) > 0 {
			return fmt.Errorf("banned attacker still has %d connections", len(c))
		}
		return nil
	})
	delivered()
}

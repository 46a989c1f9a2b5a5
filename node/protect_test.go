package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/node/ext"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"

	"github.com/bitmesh/bitmesh/internal/testwait"
)

func TestRankAnchors(t *testing.T) {
	p := func(i int) peer.ID { return peer.ID(fmt.Sprintf("peer-%d", i)) }
	for _, tc := range []struct {
		name  string
		cands []anchorCandidate
		want  []peer.ID
	}{
		{"none", nil, []peer.ID{}},
		{"silent peers are no anchors", []anchorCandidate{{id: p(1)}, {id: p(2), outbound: true}}, []peer.ID{}},
		{"most deliveries first", []anchorCandidate{{id: p(1), deliveries: 3}, {id: p(2), deliveries: 9}, {id: p(3), deliveries: 5}}, []peer.ID{p(2), p(3), p(1)}},
		{"outbound first on a tie", []anchorCandidate{{id: p(1), deliveries: 4}, {id: p(2), deliveries: 4, outbound: true}}, []peer.ID{p(2), p(1)}},
		{"misbehaving peers never", []anchorCandidate{{id: p(1), deliveries: 99, misbehaved: true}, {id: p(2), deliveries: 1}}, []peer.ID{p(2)}},
		{"at most maxAnchors", []anchorCandidate{
			{id: p(1), deliveries: 1}, {id: p(2), deliveries: 2}, {id: p(3), deliveries: 3},
			{id: p(4), deliveries: 4}, {id: p(5), deliveries: 5}, {id: p(6), deliveries: 6},
		}, []peer.ID{p(6), p(5), p(4), p(3)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rankAnchors(tc.cands); !slices.Equal(got, tc.want) {
				t.Fatalf("rankAnchors = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLoadAnchorsRefusesBadFiles(t *testing.T) {
	for _, tc := range []struct {
		name, content string
	}{
		{"not JSON", "{"},
		{"wrong version", `{"version": 2, "peers": []}`},
		{"bad peer ID", `{"version": 1, "peers": [{"id": "nope"}]}`},
		{"too large", `{"version": 1, "peers": [], "pad": "` + string(make([]byte, maxAnchorsFile)) + `"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, AnchorsFileName)
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := loadAnchors(dir); err == nil {
				t.Fatal("bad anchors file accepted")
			}
		})
	}
	if got, err := loadAnchors(t.TempDir()); err != nil || got != nil {
		t.Fatalf("missing file: %v, %v; want no anchors, no error", got, err)
	}
}

// TestAnchorsRedialledAfterRestart: a node with a data directory that
// received messages first from a peer keeps it as an anchor when it
// stops, and dials it first (and protects it) at the next start, with no
// bootstrap peer configured.
func TestAnchorsRedialledAfterRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	publisher, err := New(LocalConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := publisher.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer publisher.Close()

	dir := t.TempDir()
	cfg := LocalConfig()
	cfg.DataDir = dir
	for _, a := range publisher.Addrs() {
		cfg.BootstrapPeers = append(cfg.BootstrapPeers, a.String())
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	sub, err := n.Subscribe("t")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := publisher.Publish(ctx, "t", []byte{byte(i)}, WithMinPeers(1)); err != nil {
			t.Fatal(err)
		}
		if _, err := sub.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// GossipSub's tag tracer bumps its delivery tags asynchronously, and
	// drops them when the node leaves the topic: keep the subscription.
	testwait.For(t, 5*time.Second, 10*time.Millisecond, func() error {
		for tag, v := range n.Host().ConnManager().GetTagInfo(publisher.PeerID()).Tags {
			if strings.HasPrefix(tag, deliveryTagPrefix) && v > 0 {
				return nil
			}
		}
		return fmt.Errorf("no delivery tag on the publisher yet: %+v", n.Host().ConnManager().GetTagInfo(publisher.PeerID()))
	})
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	sub.Cancel()
	anchors, err := loadAnchors(dir)
	if err != nil || len(anchors) != 1 || anchors[0].ID != publisher.PeerID() {
		t.Fatalf("anchors after stop: %v, %v; want the publisher", anchors, err)
	}

	cfg.BootstrapPeers = nil
	again, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.Host().Network().Connectedness(publisher.PeerID()) != network.Connected {
		t.Fatal("restarted node did not dial its anchor")
	}
	if !again.Host().ConnManager().IsProtected(publisher.PeerID(), tagProtected) {
		t.Fatal("anchor not protected from trimming")
	}
}

// TestStreamProtocolScopes: the node's resource manager gives each of its
// stream protocols a scope with the protocol's limits, so libp2p itself
// refuses streams beyond them.
func TestStreamProtocolScopes(t *testing.T) {
	rm, err := resourceManager(map[protocol.ID]ext.StreamLimits{"/test/1": {PerPeer: 2, Total: 8, Timeout: time.Second}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	err = rm.ViewProtocol("/test/1", func(s network.ProtocolScope) error {
		l, ok := s.(interface{ Limit() rcmgr.Limit })
		if !ok {
			return fmt.Errorf("scope %T has no limit", s)
		}
		if got := l.Limit().GetStreamLimit(network.DirInbound); got != 8 {
			return fmt.Errorf("inbound stream limit %d, want 8", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

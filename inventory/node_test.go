package inventory_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/inventory"
	"github.com/bitmesh/bitmesh/node"

	"github.com/bitmesh/bitmesh/internal/testwait"
)

// objNode is a real node running the inventory extension.
type objNode struct {
	n   *node.Node
	inv *inventory.Inventory
	dir string
}

// testConfig is DefaultConfig with announcements every 50 ms on average
// and a 2 s stall timeout, so tests run in seconds.
func testConfig() inventory.Config {
	c := inventory.DefaultConfig()
	c.TrickleInterval = 50 * time.Millisecond
	c.StallTimeout = 2 * time.Second
	c.ChunkSize = inventory.MinChunkSize
	return c
}

// startObjNode starts a node on loopback with its data in dir ("" for a
// temporary one).
func startObjNode(t *testing.T, dir string, ic inventory.Config) objNode {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	inv, err := inventory.New(ic)
	if err != nil {
		t.Fatal(err)
	}
	cfg := node.LocalConfig()
	cfg.DataDir = dir
	n, err := node.New(cfg, node.WithExtension(inv))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return objNode{n: n, inv: inv, dir: dir}
}

func connect(t *testing.T, a, b *node.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Host().Connect(ctx, peer.AddrInfo{ID: b.PeerID(), Addrs: b.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// randomFile writes size random bytes to a file and returns its path and
// bytes.
func randomFile(t *testing.T, size int) (string, []byte) {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	path := filepath.Join(t.TempDir(), "object.bin")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, b
}

func content(t *testing.T, inv *inventory.Inventory, id inventory.ID) []byte {
	t.Helper()
	r, err := inv.Content(id)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFetchFromTwoAnnouncers: a publisher shares an object; a second node
// wants its type, fetches it on announcement and re-announces it; a third,
// connected only to the second... and the first, fetches it explicitly
// from both in parallel. Every copy is the publisher's bytes.
func TestFetchFromTwoAnnouncers(t *testing.T) {
	pub := startObjNode(t, "", testConfig())
	wc := testConfig()
	wc.Types = []string{"firmware"}
	relay := startObjNode(t, "", wc)
	connect(t, relay.n, pub.n)
	path, want := randomFile(t, 3<<20+12345)
	info, err := pub.inv.Share(context.Background(), path, inventory.ShareOptions{Type: "firmware"})
	if err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 20*time.Second, 20*time.Millisecond, func() error {
		got, err := relay.inv.Info(info.ID)
		if err != nil || !got.Complete {
			return fmt.Errorf("relay has %+v, %v", got, err)
		}
		return nil
	})
	if !bytes.Equal(content(t, relay.inv, info.ID), want) {
		t.Fatal("relay's copy differs")
	}
	last := startObjNode(t, "", testConfig())
	connect(t, last.n, pub.n)
	connect(t, last.n, relay.n)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := last.inv.Fetch(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(content(t, last.inv, info.ID), want) {
		t.Fatal("last copy differs")
	}
	a, _ := pub.inv.Info(info.ID)
	b, _ := relay.inv.Info(info.ID)
	got, _ := last.inv.Info(info.ID)
	t.Logf("chunks %d: served by publisher %d, by relay %d; fetched %d", got.Chunks, a.Served, b.Served, got.Fetched)
	if got.Fetched != int64(got.Chunks) {
		t.Fatalf("fetched %d chunks of %d", got.Fetched, got.Chunks)
	}
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

func peerInfo(n objNode) peer.AddrInfo {
	return peer.AddrInfo{ID: n.n.PeerID(), Addrs: n.n.Host().Addrs()}
}

// rawHost is a libp2p host with a secp256k1 key and no bitmesh code.
func rawHost(t testing.TB) host.Host {
	t.Helper()
	key, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(key.Libp2pKey()), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o600) }

// benchObject adds a one-chunk object of chunk to s, with its leaves.
func benchObject(b *testing.B, s *inventory.Store, chunk []byte) inventory.ID {
	b.Helper()
	key, err := identity.Generate()
	if err != nil {
		b.Fatal(err)
	}
	leaf := inventory.LeafHash(chunk)
	m := inventory.Manifest{Network: "bitmesh", Created: time.Unix(1, 0), Type: "firmware",
		Size: uint64(len(chunk)), ChunkSize: uint32(len(chunk)), Root: leaf, Content: sha256.Sum256(chunk)}
	id, err := m.Sign(key)
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := m.Encode()
	if _, _, err := s.Create(raw); err != nil {
		b.Fatal(err)
	}
	if err := s.SetLeaves(id, [][32]byte{leaf}); err != nil {
		b.Fatal(err)
	}
	return id
}

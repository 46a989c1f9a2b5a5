package inventory_test

import (
	"context"
	"crypto/sha256"
	"io"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/inventory"
	"github.com/bitmesh/bitmesh/node"
)

// benchSize is the object the transfer benchmarks move: 64 MiB.
const benchSize = 64 << 20

// tcpInfo is n's address info with its TCP addresses only, so that both
// transfer benchmarks run over the same transport.
func tcpInfo(id peer.ID, addrs []multiaddr.Multiaddr) peer.AddrInfo {
	info := peer.AddrInfo{ID: id}
	for _, a := range addrs {
		if strings.Contains(a.String(), "/tcp/") {
			info.Addrs = append(info.Addrs, a)
		}
	}
	return info
}

// BenchmarkTransfer compares fetching a 64 MiB object between two real
// nodes on loopback with copying the same bytes over a raw libp2p stream
// between two bare hosts (same transport: TCP, Noise, yamux). Run the
// sub-benchmarks together (PERFORMANCE.md):
//
//	go test -run '^$' -bench 'Transfer|ChunkVerify' -benchtime 5x ./inventory/
//
// "inventory/disk" keeps the object in the data directory with fsync per
// request, as a device does; "inventory/memory" keeps it in memory (a
// node without a data directory), which isolates the protocol's cost.
func BenchmarkTransfer(b *testing.B) {
	for _, store := range []string{"disk", "memory"} {
		b.Run("inventory/"+store, func(b *testing.B) { benchInventory(b, store == "disk") })
	}
	b.Run("raw-stream", benchRawStream)
	b.Run("raw-stream-nodes", benchRawStreamNodes)
}

// benchRawStreamNodes copies the bytes over a raw stream between two
// bitmesh nodes' hosts: the same hosts, transports and resource manager
// the inventory benchmarks use, without the protocol.
func benchRawStreamNodes(b *testing.B) {
	const proto = "/bench/copy/1.0.0"
	srv, _ := benchNode(b, "")
	defer srv.Close()
	data := make([]byte, benchSize)
	srv.Host().SetStreamHandler(proto, func(s network.Stream) {
		defer s.Close()
		for off := 0; off < len(data); off += 256 << 10 {
			if _, err := s.Write(data[off : off+256<<10]); err != nil {
				return
			}
		}
	})
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		cli, _ := benchNode(b, "")
		if err := cli.Host().Connect(context.Background(), tcpInfo(srv.PeerID(), srv.Host().Addrs())); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		s, err := cli.Host().NewStream(context.Background(), srv.PeerID(), proto)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, s)
		if err != nil || n != benchSize {
			b.Fatalf("copied %d bytes: %v", n, err)
		}
		s.Close()
		b.StopTimer()
		cli.Close()
		b.StartTimer()
	}
}

func benchNode(b *testing.B, dir string) (*node.Node, *inventory.Inventory) {
	b.Helper()
	ic := inventory.DefaultConfig()
	inv, err := inventory.New(ic)
	if err != nil {
		b.Fatal(err)
	}
	cfg := node.LocalConfig()
	cfg.DataDir = dir
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	n, err := node.New(cfg, node.WithExtension(inv))
	if err != nil {
		b.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	return n, inv
}

func benchInventory(b *testing.B, disk bool) {
	dir := func() string {
		if disk {
			return b.TempDir()
		}
		return ""
	}
	pubDir := b.TempDir() // Share reads the file from here
	pub, pinv := benchNode(b, pubDir)
	defer pub.Close()
	path := writeBenchFile(b, pubDir)
	info, err := pinv.Share(context.Background(), path, inventory.ShareOptions{Type: "firmware"})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		n, inv := benchNode(b, dir())
		if err := n.Host().Connect(context.Background(), tcpInfo(pub.PeerID(), pub.Host().Addrs())); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := inv.Fetch(context.Background(), info.ID); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		n.Close()
		b.StartTimer()
	}
}

func writeBenchFile(b *testing.B, dir string) string {
	b.Helper()
	buf := make([]byte, benchSize)
	for i := range buf {
		buf[i] = byte(i * 31 >> 7)
	}
	path := dir + "/bench.bin"
	if err := writeFile(path, buf); err != nil {
		b.Fatal(err)
	}
	return path
}

func benchRawStream(b *testing.B) {
	const proto = "/bench/copy/1.0.0"
	newHost := func() *hostCloser {
		key, err := identity.Generate()
		if err != nil {
			b.Fatal(err)
		}
		h, err := libp2p.New(libp2p.Identity(key.Libp2pKey()), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			b.Fatal(err)
		}
		return &hostCloser{h}
	}
	srv := newHost()
	defer srv.Close()
	data := make([]byte, benchSize)
	srv.SetStreamHandler(proto, func(s network.Stream) {
		defer s.Close()
		for off := 0; off < len(data); off += 256 << 10 {
			if _, err := s.Write(data[off : off+256<<10]); err != nil {
				return
			}
		}
	})
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		cli := newHost()
		if err := cli.Connect(context.Background(), tcpInfo(srv.ID(), srv.Addrs())); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		s, err := cli.NewStream(context.Background(), srv.ID(), proto)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, s)
		if err != nil || n != benchSize {
			b.Fatalf("copied %d bytes: %v", n, err)
		}
		s.Close()
		b.StopTimer()
		cli.Close()
		b.StartTimer()
	}
}

// BenchmarkChunkVerify compares checking a 256 KiB chunk against its leaf
// hash, as every chunk from a peer is (Store.VerifyChunk: RFC 9162 leaf
// hash and compare), with a raw SHA-256 of the same bytes.
func BenchmarkChunkVerify(b *testing.B) {
	chunk := make([]byte, inventory.DefaultChunkSize)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	b.Run("verify-chunk", func(b *testing.B) {
		s, _, err := inventory.OpenStore("", "bitmesh", func(string) uint64 { return 1 << 30 })
		if err != nil {
			b.Fatal(err)
		}
		id := benchObject(b, s, chunk)
		h := inventory.NewLeafHasher()
		b.SetBytes(int64(len(chunk)))
		b.ResetTimer()
		for range b.N {
			if _, err := s.VerifyChunk(h, id, 0, chunk); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(int64(len(chunk)))
		for range b.N {
			sha256.Sum256(chunk)
		}
	})
}

package inventory_test

import (
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

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
// (same transport: TCP, TLS, yamux). Run the sub-benchmarks together
// (PERFORMANCE.md):
//
//	go test -run '^$' -bench 'Transfer|ChunkVerify' -benchtime 5x ./inventory/
//
// "inventory/disk" keeps the object in the data directory, each chunk
// acknowledged once synced, as a device does; "inventory/memory" keeps it
// in memory (a node without a data directory), which isolates the
// protocol's cost. The raw streams run between two bare hosts
// ("raw-stream") or between two nodes' hosts, and their receiver either
// discards the bytes, hashes each 256 KiB as a leaf ("-sha256": the least
// any verified transfer costs), or writes them to a file synced every
// 4 MiB ("-disk": what the disk store must at least do).
func BenchmarkTransfer(b *testing.B) {
	for _, store := range []string{"disk", "memory"} {
		b.Run("inventory/"+store, func(b *testing.B) { benchInventory(b, store == "disk") })
	}
	b.Run("raw-stream", func(b *testing.B) { benchRaw(b, bareHost(b), discardSink) })
	b.Run("raw-stream-nodes", func(b *testing.B) { benchRaw(b, nodeHost(b), discardSink) })
	b.Run("raw-stream-nodes-sha256", func(b *testing.B) { benchRaw(b, nodeHost(b), hashSink) })
	b.Run("raw-stream-nodes-disk", func(b *testing.B) { benchRaw(b, nodeHost(b), fileSink(b.TempDir())) })
}

// A sink takes the bytes a raw stream delivers and returns their count.
type sink func(r io.Reader) (int64, error)

func discardSink(r io.Reader) (int64, error) { return io.Copy(io.Discard, r) }

// eachChunk reads r to its end in chunks of DefaultChunkSize (the last
// may be short) and hands each to f with its offset; it returns the bytes
// read.
func eachChunk(r io.Reader, f func(off int64, c []byte) error) (int64, error) {
	buf := make([]byte, inventory.DefaultChunkSize)
	var n int64
	for {
		k, err := io.ReadFull(r, buf)
		if k > 0 {
			if ferr := f(n, buf[:k]); ferr != nil {
				return n, ferr
			}
			n += int64(k)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return n, nil
		} else if err != nil {
			return n, err
		}
	}
}

// hashSink hashes every chunk as the fetcher does.
func hashSink(r io.Reader) (int64, error) {
	h := inventory.NewLeafHasher()
	return eachChunk(r, func(_ int64, c []byte) error {
		h.Sum(c)
		return nil
	})
}

// fileSink writes the bytes to a file in dir, synced every 16 chunks as
// one getdata's are, and at the end.
func fileSink(dir string) sink {
	return func(r io.Reader) (int64, error) {
		f, err := os.Create(filepath.Join(dir, "raw"))
		if err != nil {
			return 0, err
		}
		defer f.Close()
		chunks := 0
		n, err := eachChunk(r, func(off int64, c []byte) error {
			if _, err := f.WriteAt(c, off); err != nil {
				return err
			}
			if chunks++; chunks%16 == 0 {
				return f.Sync()
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		return n, f.Sync()
	}
}

// benchRaw copies the bytes over one raw stream from a host newHost
// makes to a fresh one per iteration (connected before the timer runs);
// recv takes them.
func benchRaw(b *testing.B, newHost func() (host.Host, func() error), recv sink) {
	const proto = "/bench/copy/1.0.0"
	srv, closeSrv := newHost()
	defer closeSrv()
	data := make([]byte, benchSize)
	srv.SetStreamHandler(proto, func(s network.Stream) {
		defer s.Close()
		for off := 0; off < len(data); off += 256 << 10 {
			if _, err := s.Write(data[off : off+256<<10]); err != nil {
				return
			}
		}
	})
	var cpu cpuMeter
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		cli, closeCli := newHost()
		if err := cli.Connect(context.Background(), tcpInfo(srv.ID(), srv.Addrs())); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		cpu.start()
		s, err := cli.NewStream(context.Background(), srv.ID(), proto)
		if err != nil {
			b.Fatal(err)
		}
		n, err := recv(s)
		if err != nil || n != benchSize {
			b.Fatalf("copied %d bytes: %v", n, err)
		}
		s.Close()
		cpu.stop()
		b.StopTimer()
		closeCli()
		b.StartTimer()
	}
	cpu.report(b)
}

// bareHost is a libp2p host with no bitmesh code.
func bareHost(b *testing.B) func() (host.Host, func() error) {
	return func() (host.Host, func() error) {
		h := rawHost(b)
		return h, h.Close
	}
}

// nodeHost is a bitmesh node's host: its transports and resource
// manager, no protocol of ours in the way.
func nodeHost(b *testing.B) func() (host.Host, func() error) {
	return func() (host.Host, func() error) {
		n, _ := benchNode(b, "")
		return n.Host(), n.Close
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
	var cpu cpuMeter
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		n, inv := benchNode(b, dir())
		if err := n.Host().Connect(context.Background(), tcpInfo(pub.PeerID(), pub.Host().Addrs())); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		cpu.start()
		if err := inv.Fetch(context.Background(), info.ID); err != nil {
			b.Fatal(err)
		}
		cpu.stop()
		b.StopTimer()
		n.Close()
		b.StartTimer()
	}
	cpu.report(b)
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

// cpuMeter sums the process's CPU time (both nodes, every core) over the
// timed transfers: with the cores shared, a transfer can go no faster than
// its CPU time divided by the cores.
type cpuMeter struct{ total, begun time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (c *cpuMeter) start() { c.begun = processCPU() }
func (c *cpuMeter) stop()  { c.total += processCPU() - c.begun }

// report adds the CPU milliseconds per transfer to b's results.
func (c *cpuMeter) report(b *testing.B) {
	b.ReportMetric(float64(c.total)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

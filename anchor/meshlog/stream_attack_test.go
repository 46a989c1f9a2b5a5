package meshlog_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/anchor/meshlog"
	"github.com/bitmesh/bitmesh/node"

	"github.com/bitmesh/bitmesh/internal/testwait"
)

// maxHeapGrowth is the bound PROTOCOL.md §18.3 promises for eight
// concurrent maximal requests on /bitmesh/log/1.0.0.
const maxHeapGrowth = 64 << 20

// bigLogServer starts a node whose log of topic holds count leaves of
// 1 MiB (the largest a log takes) in a bbolt store.
func bigLogServer(t *testing.T, topic string, count int) (logNode, string) {
	t.Helper()
	store, err := anchor.OpenBoltStore(t.TempDir() + "/anchor.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	leaves := make([][]byte, count)
	for i := range leaves {
		leaves[i] = bytes.Repeat([]byte{byte(i)}, anchor.MaxLeafSize)
	}
	lc := logConfig(topic)
	lc.Store = storeWith(t, store, topic, leaves)
	ln := startLog(t, lc, node.LocalConfig())
	return ln, meshlog.Origin(ln.n.NetworkName(), ln.n.DeviceID(), topic)
}

// rawPeer is a libp2p host with no bitmesh code, connected to target.
func rawPeer(t *testing.T, target *node.Node) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, peer.AddrInfo{ID: target.PeerID(), Addrs: target.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	return h
}

func entriesRequest(t *testing.T, origin string, count uint64) []byte {
	t.Helper()
	b, err := meshlog.Request{Kind: meshlog.ReqEntries, Origin: origin, A: 0, B: count}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// heapPeak samples the heap every millisecond until stop is closed and
// returns the largest HeapAlloc seen.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		var ms runtime.MemStats
		var peak uint64
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			select {
			case <-stop:
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return out
}

// TestLogStreamMemoryBounded: eight peers at once, each asking for the
// most entries one request may name of a log of 1 MiB entries, four times
// in a row. Each answer holds at most MaxEntriesResponseBytes, so the
// server's heap grows by a few MiB, not by the 64 MiB × 8 the entries
// would take; the peak is logged for PERFORMANCE.md.
func TestLogStreamMemoryBounded(t *testing.T) {
	const topic, entries = "firmware/blobs", 64
	server, origin := bigLogServer(t, topic, entries)
	req := entriesRequest(t, origin, entries)
	var attackers []host.Host
	for range 8 {
		attackers = append(attackers, rawPeer(t, server.n))
	}

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	stop := make(chan struct{})
	peak := heapPeak(stop)
	var wg sync.WaitGroup
	var served, bytesRead atomic.Int64
	for _, h := range attackers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 4 {
				n, err := askRaw(h, server.n.PeerID(), req)
				if err != nil {
					t.Errorf("request: %v", err)
					return
				}
				served.Add(1)
				bytesRead.Add(n)
			}
		}()
	}
	wg.Wait()
	close(stop)
	growth := int64(<-peak) - int64(base.HeapAlloc)
	t.Logf("8 peers × 4 maximal entries requests: %d answers, %d MiB read, heap growth peak %.1f MiB (bound %d MiB)",
		served.Load(), bytesRead.Load()>>20, float64(growth)/(1<<20), maxHeapGrowth>>20)
	if served.Load() != 32 {
		t.Fatalf("%d of 32 requests answered", served.Load())
	}
	if growth > maxHeapGrowth {
		t.Fatalf("heap grew by %d MiB serving 8 concurrent requests, bound %d MiB", growth>>20, maxHeapGrowth>>20)
	}
}

// askRaw sends req on the log protocol and reads the whole answer.
func askRaw(h host.Host, p peer.ID, req []byte) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, p, meshlog.ProtocolID)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	if _, err := s.Write(req); err != nil {
		return 0, err
	}
	_ = s.CloseWrite()
	n, err := io.Copy(io.Discard, s)
	if err == nil && n == 0 {
		err = fmt.Errorf("empty answer")
	}
	return n, err
}

// TestLogStreamConcurrencyBounded: one peer opens eight requests and
// never reads the answers. The server serves two of them at once (the
// per-peer bound), resets the other six at once and counts them; the two
// it serves end at the stream timeout, not never.
func TestLogStreamConcurrencyBounded(t *testing.T) {
	const topic = "firmware/blobs"
	server, origin := bigLogServer(t, topic, 4)
	req := entriesRequest(t, origin, 4)
	attacker := rawPeer(t, server.n)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 8 {
		s, err := attacker.NewStream(ctx, server.n.PeerID(), meshlog.ProtocolID)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Reset()
		if _, err := s.Write(req); err != nil {
			t.Fatal(err)
		}
	}
	testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got := server.n.StreamsRefused()[meshlog.ProtocolID]; got != 6 {
			return fmt.Errorf("%d streams refused, want 6", got)
		}
		return nil
	})
	// An honest peer is still served meanwhile: the total bound is not
	// reached by one peer.
	if _, err := askRaw(rawPeer(t, server.n), server.n.PeerID(), entriesRequest(t, origin, 1)); err != nil {
		t.Fatalf("honest request while one peer stalls: %v", err)
	}
}

package inventory_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/inventory"

	"github.com/bitmesh/bitmesh/internal/testnode"
	"github.com/bitmesh/bitmesh/internal/testwait"
)

// hostileMode is how a hostile server misbehaves.
type hostileMode int

const (
	corruptChunk hostileMode = iota // serves every chunk with one bit flipped
	stall                           // reads getdata requests and never answers
	drip                            // serves every chunk intact, each dripDelay after the last
)

// dripDelay is how long a drip server waits before each chunk: under
// testConfig's StallTimeout, so it is never silent long enough to be
// scored for stalling.
const dripDelay = 1500 * time.Millisecond

// hostile is a libp2p host with a secp256k1 key that speaks
// /bitmesh/inv/1.0.0 from a copy of an honest node's object, but
// misbehaves on getdata as mode says.
func hostile(t *testing.T, src inventory.ObjectInfo, from *inventory.Inventory, mode hostileMode) host.Host {
	t.Helper()
	h := rawHost(t)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) }) // runs before h.Close
	raw, leaves := manifestAndLeaves(t, from, src.ID)
	data := content(t, from, src.ID)
	h.SetStreamHandler(inventory.ProtocolID, func(s network.Stream) {
		defer s.Close()
		req, err := inventory.ReadRequest(bufio.NewReader(s))
		if err != nil {
			s.Reset()
			return
		}
		switch req.Kind {
		case inventory.KindGetManifest:
			s.Write(inventory.AppendManifestAnswer(nil, raw))
		case inventory.KindGetLeaves:
			s.Write(inventory.AppendLeavesAnswer(nil, leaves))
		case inventory.KindGetData:
			if mode == stall {
				<-stop // silent until the test ends
				return
			}
			for i := req.First; i < req.First+uint32(req.Count); i++ {
				off := int(i) * int(src.ChunkSize)
				c := append([]byte(nil), data[off:min(off+int(src.ChunkSize), len(data))]...)
				if mode == drip {
					select {
					case <-stop:
						return
					case <-time.After(dripDelay):
					}
				} else {
					c[len(c)/2] ^= 1
				}
				if _, err := s.Write(append(inventory.AppendChunkHeader(nil, len(c)), c...)); err != nil {
					return
				}
			}
		}
	})
	return h
}

// manifestAndLeaves reads what a hostile server needs of an object.
func manifestAndLeaves(t *testing.T, inv *inventory.Inventory, id inventory.ID) ([]byte, [][32]byte) {
	t.Helper()
	raw, leaves, err := inv.Export(id)
	if err != nil {
		t.Fatal(err)
	}
	return raw, leaves
}

// announce sends an inv of ids from h to n.
func announce(t *testing.T, h host.Host, n objNode, ids ...inventory.ID) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, n.n.PeerID(), inventory.ProtocolID)
	if err != nil {
		return err
	}
	b, err := inventory.Request{Kind: inventory.KindInv, IDs: ids}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(b); err != nil {
		return err
	}
	s.CloseWrite()
	io.Copy(io.Discard, s)
	return s.Close()
}

func connectHost(t *testing.T, h host.Host, n objNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, peerInfo(n)); err != nil {
		t.Fatal(err)
	}
}

// TestBadChunkBannedAtFirstChunk: a victim wants firmware; a hostile peer
// that serves every chunk corrupted announces it first, then an honest
// one. The victim bans the hostile peer at its first bad chunk (one
// bad-chunk count, score 100) and completes from the honest peer.
func TestBadChunkBannedAtFirstChunk(t *testing.T) {
	r := hostileFirst(t, 1<<20, corruptChunk)
	testwait.For(t, 10*time.Second, 10*time.Millisecond, func() error {
		if s := testnode.Score(t, r.victim.n, antispam.PeerSubject(r.bad.ID())); s < 100 {
			return errorf("hostile peer scored %d", s)
		}
		return nil
	})
	if c := r.victim.inv.Counters(); c.BadChunks != 1 {
		t.Fatalf("bad chunks counted %d, want exactly the first one", c.BadChunks)
	}
	r.honestJoins(t)
}

// hostileRace is a fetch of an object from a hostile server first and an
// honest one after.
type hostileRace struct {
	pub, victim objNode
	bad         host.Host
	id          inventory.ID
	want        []byte
}

// hostileFirst publishes a size-byte object on an honest node and starts
// a victim that wants it; a hostile server in mode announces it first.
func hostileFirst(t *testing.T, size int, mode hostileMode) hostileRace {
	t.Helper()
	pub := startObjNode(t, "", testConfig())
	path, want := randomFile(t, size)
	info, err := pub.inv.Share(context.Background(), path, inventory.ShareOptions{Type: "firmware"})
	if err != nil {
		t.Fatal(err)
	}
	vc := testConfig()
	vc.Types = []string{"firmware"}
	victim := startObjNode(t, "", vc)
	bad := hostile(t, info, pub.inv, mode)
	connectHost(t, bad, victim)
	if err := announce(t, bad, victim, info.ID); err != nil {
		t.Fatal(err)
	}
	return hostileRace{pub: pub, victim: victim, bad: bad, id: info.ID, want: want}
}

// honestJoins connects the honest node to the victim and returns how long
// the fetch took from then, once the victim holds the object intact.
func (r hostileRace) honestJoins(t *testing.T) time.Duration {
	t.Helper()
	connect(t, r.victim.n, r.pub.n)
	start := time.Now()
	testwait.For(t, 30*time.Second, 20*time.Millisecond, func() error {
		got, err := r.victim.inv.Info(r.id)
		if err != nil || !got.Complete {
			return errorf("victim has %+v, %v", got, err)
		}
		return nil
	})
	took := time.Since(start)
	if got := content(t, r.victim.inv, r.id); string(got) != string(r.want) {
		t.Fatal("victim's copy differs")
	}
	return took
}

// TestStallingPeerBypassed: a victim fetches from a hostile peer that
// takes getdata requests and never answers, and an honest one. The
// stalling peer is scored for it and its chunks go to the honest one; the
// fetch completes within a few stall timeouts.
func TestStallingPeerBypassed(t *testing.T) {
	r := hostileFirst(t, 1<<20, stall)
	time.Sleep(200 * time.Millisecond) // the victim's requests to the silent peer are out
	took := r.honestJoins(t)
	victim, silent := r.victim, r.bad
	t.Logf("complete %v after the honest peer connected", took)
	// The stall is scored as the silent peer's requests time out, which
	// is around the completion: its chunks went to the honest peer at
	// the tail stall window or at the timeout, whichever came first.
	testwait.For(t, 5*time.Second, 10*time.Millisecond, func() error {
		if c := victim.inv.Counters(); c.Stalls < 1 {
			return errorf("stalls counted %d", c.Stalls)
		}
		return nil
	})
	if s := testnode.Score(t, victim.n, antispam.PeerSubject(silent.ID())); s < 20 { // 25 transient points, decaying
		t.Fatalf("stalling peer scored %d, want 25 less a few seconds of decay", s)
	}
}

// TestDripFeederDroppedAtTheTail: a victim fetches from a hostile peer
// that serves every chunk intact but slowly, each just inside the stall
// timeout, and from an honest one. Holding its three requests of 16
// chunks, the drip feeder alone would keep the download open for 16
// delays (24 s). Once the honest peer has served the rest and sits idle,
// the tail stall rule gives the feeder's chunks to it: the fetch
// completes within a few seconds, the drop is counted, and the feeder is
// not scored (a slow honest link looks the same).
func TestDripFeederDroppedAtTheTail(t *testing.T) {
	r := hostileFirst(t, 64*int(inventory.MinChunkSize), drip)
	time.Sleep(200 * time.Millisecond) // the victim's requests to the drip feeder are out
	took := r.honestJoins(t)
	victim, slow := r.victim, r.bad
	c := victim.inv.Counters()
	t.Logf("complete %v after the honest peer connected; tail stalls %d, stalls %d", took, c.TailStalls, c.Stalls)
	if took > 8*time.Second {
		t.Fatalf("the drip feeder held the download %v; 16 delays are %v", took, 16*dripDelay)
	}
	if c.TailStalls == 0 {
		t.Fatal("no tail stall counted")
	}
	if s := testnode.Score(t, victim.n, antispam.PeerSubject(slow.ID())); s != 0 {
		t.Fatalf("drip feeder scored %d; slowness alone is not scored", s)
	}
}

// TestInventoryFloodBoundedAndScored: a peer announces 20 full invs of
// random IDs (20,000 IDs) at once. The victim takes one burst (1000 IDs),
// drops the rest and scores each excess inv until the flooder is banned;
// it probes at most maxProbes manifests at a time, every one of which the
// flooder cannot serve; its memory of announcements stays bounded; and an
// honest rollout to it still completes.
func TestInventoryFloodBoundedAndScored(t *testing.T) {
	pub := startObjNode(t, "", testConfig())
	vc := testConfig()
	vc.Types = []string{"firmware"}
	victim := startObjNode(t, "", vc)
	connect(t, victim.n, pub.n)
	flooder := rawHost(t)
	connectHost(t, flooder, victim)
	var sent int
	for range 20 {
		ids := make([]inventory.ID, inventory.MaxInvPerMsg)
		for i := range ids {
			rand.Read(ids[i][:])
		}
		if announce(t, flooder, victim, ids...) != nil {
			break // banned: the victim hung up
		}
		sent += len(ids)
	}
	testwait.For(t, 10*time.Second, 10*time.Millisecond, func() error {
		if s := testnode.Score(t, victim.n, antispam.PeerSubject(flooder.ID())); s < 100 {
			return errorf("flooder scored %d", s)
		}
		return nil
	})
	c := victim.inv.Counters()
	t.Logf("sent %d IDs; victim took %d, dropped %d over budget, probes dropped %d, notfound %d", sent, c.InvReceived, c.InvOverBudget, c.ProbesDropped, c.NotFound)
	if c.InvReceived > inventory.MaxInvPerMsg+100 {
		t.Fatalf("victim took %d announced IDs, budget is a burst of %d", c.InvReceived, inventory.MaxInvPerMsg)
	}
	path, want := randomFile(t, 512<<10)
	info, err := pub.inv.Share(context.Background(), path, inventory.ShareOptions{Type: "firmware"})
	if err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 20*time.Second, 20*time.Millisecond, func() error {
		got, err := victim.inv.Info(info.ID)
		if err != nil || !got.Complete {
			return errorf("victim has %+v, %v", got, err)
		}
		return nil
	})
	if got := content(t, victim.inv, info.ID); string(got) != string(want) {
		t.Fatal("victim's copy differs")
	}
}

// TestCloseDuringStalledFetch: a node whose only source is silent closes
// at once, without waiting out the stall timeout (set to a minute here).
func TestCloseDuringStalledFetch(t *testing.T) {
	pub := startObjNode(t, "", testConfig())
	path, _ := randomFile(t, 256<<10)
	info, err := pub.inv.Share(context.Background(), path, inventory.ShareOptions{Type: "firmware"})
	if err != nil {
		t.Fatal(err)
	}
	vc := testConfig()
	vc.Types = []string{"firmware"}
	vc.StallTimeout = time.Minute
	victim := startObjNode(t, "", vc)
	silent := hostile(t, info, pub.inv, stall)
	connectHost(t, silent, victim)
	if err := announce(t, silent, victim, info.ID); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 5*time.Second, 10*time.Millisecond, func() error {
		if got, err := victim.inv.Info(info.ID); err != nil || got.Chunks == 0 {
			return errorf("no fetch yet: %v", err)
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond) // the getdata requests are out
	start := time.Now()
	victim.n.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v with a fetch stalled", d)
	}
}

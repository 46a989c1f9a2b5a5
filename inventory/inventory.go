package inventory

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/time/rate"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/node/ext"
)

// Inventory is the node extension that shares and fetches large objects.
// Its methods are safe for concurrent access.
type Inventory struct {
	cfg Config // set at New, never modified

	// set at Start, never modified
	h       ext.Host
	store   *Store
	serve   *rate.Limiter // nil: ServeRate unbounded
	notify  *network.NotifyBundle
	stopped chan struct{}

	mu        sync.Mutex // guards the fields below
	running   bool
	peers     map[peer.ID]*peerState
	announced *lru.Cache[ID, []peer.ID] // who announced objects not (yet) here
	ignored   *lru.Cache[ID, struct{}]  // manifests probed and not wanted
	downloads map[ID]*fetch
	probing   int         // manifest probes running (at most maxProbes)
	queue     []probeItem // announced objects waiting for a probe, oldest first (at most maxTracked)
	counts    Counters
}

// probeItem is an announced object to probe, and who announced it.
type probeItem struct {
	id ID
	p  peer.ID
}

// peerState is what the node keeps per connected peer.
type peerState struct {
	known   *lru.Cache[ID, struct{}] // IDs the peer has told us of or we told it: never announced to it again
	queue   []ID                     // to announce at the next trickle
	limiter *rate.Limiter            // the peer's announcement budget
	out     *rate.Limiter            // ours to it: the same budget, kept, so that an honest node is never scored for flooding
}

// fetch is one object being fetched.
type fetch struct {
	core *download
	done chan struct{} // closed when the fetch ends; err then says how
	err  error

	pending []Verified    // staged chunks waiting for the committer; Inventory.mu guards it
	staged  chan struct{} // wakes the committer; capacity 1
}

// Counters count what the extension refused or dropped, by reason.
type Counters struct {
	InvOverBudget  uint64 `json:"inv_over_budget"` // announced IDs beyond a peer's budget, dropped
	InvMalformed   uint64 `json:"inv_malformed"`   // malformed requests, peer scored
	ProbesDropped  uint64 `json:"probes_dropped"`  // announced objects never probed: the probe queue was full
	BadChunks      uint64 `json:"bad_chunks"`      // chunks, leaves or manifests that failed their hash
	Stalls         uint64 `json:"stalls"`          // requests a peer left unanswered past StallTimeout
	TailStalls     uint64 `json:"tail_stalls"`     // sources dropped from a download for holding its last chunks too long while another sat idle
	NotFound       uint64 `json:"not_found"`       // notfound answers from peers that announced the object
	QuotaRefused   uint64 `json:"quota_refused"`   // objects refused for their type's quota
	Superseded     uint64 `json:"superseded"`      // older versions removed
	ServedChunks   uint64 `json:"served_chunks"`   // chunks sent to peers
	ServedBytes    uint64 `json:"served_bytes"`    // bytes of answers sent to peers: chunks, leaves, manifests
	FetchedChunks  uint64 `json:"fetched_chunks"`  // chunks fetched and committed
	InvSent        uint64 `json:"inv_sent"`        // IDs announced to peers
	InvReceived    uint64 `json:"inv_received"`    // IDs peers announced within their budget
	StoreRecovered uint64 `json:"store_recovered"` // repairs made when the store opened
}

// Refusals returns the counters of what was refused or dropped, by reason
// (the JSON names), for metrics: every reason, even at 0.
func (c Counters) Refusals() map[string]uint64 {
	return map[string]uint64{
		"inv_over_budget": c.InvOverBudget, "inv_malformed": c.InvMalformed, "probes_dropped": c.ProbesDropped,
		"bad_chunks": c.BadChunks, "stalls": c.Stalls, "tail_stalls": c.TailStalls, "not_found": c.NotFound,
		"quota_refused": c.QuotaRefused,
	}
}

var (
	_ ext.Extension = (*Inventory)(nil)
	_ ext.Streams   = (*Inventory)(nil)
)

// streamLimits bound the requests a node serves: an answer holds one chunk
// (at most 1 MiB) in memory at a time, so 32 at once hold 32 MiB; two
// minutes is 64 chunks of 1 MiB at 4.4 Mbit/s.
var streamLimits = ext.StreamLimits{PerPeer: 4, Total: 32, Timeout: 2 * time.Minute}

// New returns the extension; it does nothing until the node starts it.
func New(cfg Config) (*Inventory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Inventory{cfg: cfg, peers: make(map[peer.ID]*peerState), downloads: make(map[ID]*fetch)}, nil
}

// Name implements ext.Extension.
func (x *Inventory) Name() string { return "inventory" }

// Streams implements ext.Streams.
func (x *Inventory) Streams() map[protocol.ID]ext.StreamLimits {
	return map[protocol.ID]ext.StreamLimits{ProtocolID: streamLimits}
}

// Start implements ext.Extension: it opens the store, resumes the fetches
// a restart interrupted, and serves the protocol.
func (x *Inventory) Start(h ext.Host) error {
	dir := x.cfg.Dir
	if dir == "" && h.DataDir() != "" {
		dir = filepath.Join(h.DataDir(), "objects")
	}
	store, notes, err := OpenStore(dir, h.NetworkName(), x.cfg.quota)
	if err != nil {
		return err
	}
	for _, n := range notes {
		h.Logger().Warn("object store repaired", "note", n)
	}
	x.h, x.store = h, store
	x.counts.StoreRecovered = uint64(len(notes))
	x.announced, _ = lru.New[ID, []peer.ID](maxTracked)
	x.ignored, _ = lru.New[ID, struct{}](maxTracked)
	x.stopped = make(chan struct{})
	if x.cfg.ServeRate > 0 {
		x.serve = rate.NewLimiter(rate.Limit(x.cfg.ServeRate), max(x.cfg.ServeRate, MaxChunkSize))
	}
	if err := h.HandleStream(ProtocolID, streamLimits, x.handleStream); err != nil {
		store.Close()
		return err
	}
	x.mu.Lock()
	x.running = true
	x.mu.Unlock()
	x.notify = &network.NotifyBundle{
		ConnectedF:    func(_ network.Network, c network.Conn) { x.connected(c.RemotePeer()) },
		DisconnectedF: x.disconnected,
	}
	h.Libp2p().Network().Notify(x.notify)
	for _, p := range h.Libp2p().Network().Peers() {
		x.connected(p)
	}
	for _, id := range store.IDs() {
		if !store.Complete(id) {
			x.startFetch(id)
		}
	}
	h.Go(x.trickle)
	return nil
}

// Close implements ext.Extension.
func (x *Inventory) Close() error {
	x.mu.Lock()
	if !x.running {
		x.mu.Unlock()
		return nil
	}
	x.running = false
	x.mu.Unlock()
	x.h.Libp2p().Network().StopNotify(x.notify)
	close(x.stopped)
	x.h.Libp2p().RemoveStreamHandler(ProtocolID)
	return nil
}

// closeStore runs after every goroutine of the extension has ended.
func (x *Inventory) closeStore() { x.store.Close() }

// Counters returns the extension's counters.
func (x *Inventory) Counters() Counters {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.counts
}

func (x *Inventory) count(f func(c *Counters)) {
	x.mu.Lock()
	f(&x.counts)
	x.mu.Unlock()
}

// penalise scores p and counts the reason.
func (x *Inventory) penalise(p peer.ID, m antispam.Misbehaviour) {
	x.count(func(c *Counters) {
		switch m {
		case antispam.BadChunk:
			c.BadChunks++
		case antispam.Stalling:
			c.Stalls++
		}
	})
	x.h.Logger().Warn("object peer misbehaved", "peer", p, "misbehaviour", m)
	x.h.Penalise(antispam.PeerSubject(p), m)
}

// connected sets up a new peer's state and queues every complete object
// for it, so a peer that joins late learns what it may fetch.
func (x *Inventory) connected(p peer.ID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.running {
		return
	}
	ps := x.peerLocked(p)
	for _, id := range x.store.IDs() {
		if x.store.Complete(id) {
			ps.queue = append(ps.queue, id)
		}
	}
	for _, f := range x.downloads {
		if f.core.addPeer(p, false) {
			f.core.signal()
		}
	}
}

func (x *Inventory) peerLocked(p peer.ID) *peerState {
	ps, ok := x.peers[p]
	if !ok {
		known, _ := lru.New[ID, struct{}](maxKnownInventory)
		ps = &peerState{known: known, limiter: rate.NewLimiter(x.cfg.InvRate, x.cfg.InvBurst),
			out: rate.NewLimiter(x.cfg.InvRate, x.cfg.InvBurst)}
		x.peers[p] = ps
	}
	return ps
}

func (x *Inventory) disconnected(n network.Network, c network.Conn) {
	p := c.RemotePeer()
	if n.Connectedness(p) == network.Connected {
		return
	}
	x.mu.Lock()
	delete(x.peers, p)
	x.mu.Unlock()
}

// announce queues id for every connected peer that does not know it.
func (x *Inventory) announce(id ID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, ps := range x.peers {
		ps.queue = append(ps.queue, id)
	}
}

// trickle sends the queued announcements in batches after Poisson delays
// until the node closes.
func (x *Inventory) trickle(ctx context.Context) {
	defer x.closeStore()
	for {
		t := time.NewTimer(PoissonDelay(x.cfg.TrickleInterval, rand.Float64()))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-x.stopped:
			t.Stop()
			return
		case <-t.C:
		}
		for p, ids := range x.takeQueues(x.h.Now()) {
			x.h.Go(func(ctx context.Context) { x.sendInv(ctx, p, ids) })
		}
	}
}

// takeQueues empties every peer's queue of what the peer does not know
// yet, marks it known, and returns it.
func (x *Inventory) takeQueues(now time.Time) map[peer.ID][]ID {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make(map[peer.ID][]ID)
	for p, ps := range x.peers {
		var ids []ID
		rest := ps.queue[:0]
		budget := min(int(ps.out.TokensAt(now)), MaxInvPerMsg)
		for _, id := range ps.queue {
			switch {
			case ps.known.Contains(id) || slices.Contains(ids, id):
			case len(ids) < budget:
				ps.known.Add(id, struct{}{})
				ids = append(ids, id)
			default:
				// Over the budget the peer grants us, or a full inv:
				// the next trickle.
				rest = append(rest, id)
			}
		}
		ps.out.AllowN(now, len(ids))
		ps.queue = rest
		if len(ids) > 0 {
			out[p] = ids
			x.counts.InvSent += uint64(len(ids))
		}
	}
	return out
}

// sendInv announces ids to p, at most MaxInvPerMsg per stream.
func (x *Inventory) sendInv(ctx context.Context, p peer.ID, ids []ID) {
	for batch := range slices.Chunk(ids, MaxInvPerMsg) {
		b, err := Request{Kind: KindInv, IDs: batch}.Encode()
		if err != nil {
			return
		}
		if err := x.send(ctx, p, b); err != nil {
			x.h.Logger().Debug("announcing objects", "peer", p, "err", err)
			return
		}
	}
}

// send writes one request that has no answer.
func (x *Inventory) send(ctx context.Context, p peer.ID, req []byte) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	s, err := x.h.Libp2p().NewStream(network.WithNoDial(ctx, "announce"), p, ProtocolID)
	if err != nil {
		return err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(requestTimeout))
	if _, err := s.Write(req); err != nil {
		_ = s.Reset()
		return err
	}
	return nil
}

// handleInv takes an announcement from p: within p's budget, each ID is
// marked known to p; an object being fetched gains p as a source; one the
// node may want is probed (its manifest fetched) if a probe slot is free.
func (x *Inventory) handleInv(p peer.ID, ids []ID) {
	x.mu.Lock()
	if !x.running {
		x.mu.Unlock()
		return
	}
	ps := x.peerLocked(p)
	if !ps.limiter.AllowN(x.h.Now(), len(ids)) {
		x.counts.InvOverBudget += uint64(len(ids))
		x.mu.Unlock()
		x.penalise(p, antispam.InventoryFlood)
		return
	}
	x.counts.InvReceived += uint64(len(ids))
	var probe []ID
	for _, id := range ids {
		ps.known.Add(id, struct{}{})
		if f, ok := x.downloads[id]; ok {
			f.core.addPeer(p, true)
			continue
		}
		if x.store.Complete(id) {
			continue
		}
		anns, _ := x.announced.Get(id)
		if !slices.Contains(anns, p) && len(anns) < maxAnnouncers {
			x.announced.Add(id, append(anns, p))
		}
		if len(x.cfg.Types) > 0 && !x.ignored.Contains(id) {
			probe = append(probe, id)
		}
	}
	for _, id := range probe {
		if len(x.queue) >= maxTracked {
			x.queue = x.queue[1:]
			x.counts.ProbesDropped++
		}
		x.queue = append(x.queue, probeItem{id, p})
	}
	x.pumpProbesLocked()
	x.mu.Unlock()
}

// pumpProbesLocked starts probes from the queue while slots are free,
// skipping objects already here, being fetched or refused, and announcers
// no longer connected (a banned flooder's queue empties at no cost).
// x.mu held.
func (x *Inventory) pumpProbesLocked() {
	for x.probing < maxProbes && len(x.queue) > 0 && x.running {
		it := x.queue[0]
		x.queue = x.queue[1:]
		if _, ok := x.downloads[it.id]; ok || x.ignored.Contains(it.id) || x.store.Complete(it.id) {
			continue
		}
		if x.h.Libp2p().Network().Connectedness(it.p) != network.Connected {
			continue
		}
		x.probing++
		x.h.Go(func(ctx context.Context) {
			defer func() {
				x.mu.Lock()
				x.probing--
				x.pumpProbesLocked()
				x.mu.Unlock()
			}()
			x.probeManifest(ctx, it.p, it.id)
		})
	}
}

// probeManifest fetches an announced object's manifest from p and starts
// fetching the object if this node wants it.
func (x *Inventory) probeManifest(ctx context.Context, p peer.ID, id ID) {
	if x.store.Complete(id) || x.fetching(id) {
		return
	}
	_, raw, err := x.getManifest(ctx, p, id, true)
	if err != nil {
		return
	}
	m, _ := DecodeManifest(raw)
	if !x.wanted(m) {
		x.mu.Lock()
		x.ignored.Add(id, struct{}{})
		x.mu.Unlock()
		return
	}
	if _, _, err := x.store.Create(raw); err != nil {
		x.refused(id, err)
		return
	}
	x.startFetch(id)
}

// wanted reports whether m is fetched without being asked.
func (x *Inventory) wanted(m *Manifest) bool {
	if !slices.Contains(x.cfg.Types, m.Type) {
		return false
	}
	return len(x.cfg.Publishers) == 0 || slices.Contains(x.cfg.Publishers, m.Publisher)
}

func (x *Inventory) fetching(id ID) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	_, ok := x.downloads[id]
	return ok
}

func (x *Inventory) refused(id ID, err error) {
	x.h.Logger().Warn("object refused", "id", id, "err", err)
	x.mu.Lock()
	defer x.mu.Unlock()
	x.ignored.Add(id, struct{}{})
	if isQuota(err) {
		x.counts.QuotaRefused++
	}
}

// connectedPeers lists the peers the node has a connection to.
func (x *Inventory) connectedPeers() []peer.ID {
	return x.h.Libp2p().Network().Peers()
}

package sim

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/bitmesh/bitmesh/inventory"
)

// Rollout moves one large object through the swarm with the inventory
// extension (inv/getdata, PROTOCOL.md §20), as a firmware rollout does:
// every honest node wants the object's type, the Publisher node shares it
// after warmup, and the others fetch it from whoever announces it.
type Rollout struct {
	// Size is the object's bytes.
	Size int `yaml:"size"`
	// ChunkSize is what the publisher cuts it into (default 256 KiB).
	ChunkSize int `yaml:"chunk_size"`
	// Publisher is the honest node that shares it.
	Publisher int `yaml:"publisher"`
}

func (r *Rollout) validate(nodes int) error {
	switch {
	case r.Size < 1 || r.Size > 1<<30:
		return fmt.Errorf("rollout.size: %d outside 1..1 GiB", r.Size)
	case r.ChunkSize != 0 && (r.ChunkSize < inventory.MinChunkSize || r.ChunkSize > inventory.MaxChunkSize):
		return fmt.Errorf("rollout.chunk_size: %d outside %d..%d", r.ChunkSize, inventory.MinChunkSize, inventory.MaxChunkSize)
	case r.Publisher < 0 || r.Publisher >= nodes:
		return fmt.Errorf("rollout.publisher: %d outside 0..nodes-1", r.Publisher)
	}
	return nil
}

// RolloutReport is how the rollout went.
type RolloutReport struct {
	ObjectBytes int `json:"object_bytes"`
	// Receivers is the honest nodes other than the publisher; Complete
	// how many of them hold the whole object, Intact how many of those
	// hold bytes that hash to the published content hash.
	Receivers int `json:"receivers"`
	Complete  int `json:"complete"`
	Intact    int `json:"intact"`
	// CompleteSeconds is, over the receivers that completed, virtual
	// seconds from the share to completion.
	CompleteSeconds Percentiles `json:"complete_seconds"`
	// BytesMoved is every byte honest nodes served (chunks, leaf lists,
	// manifests); BytesRatio is BytesMoved / (Receivers × ObjectBytes):
	// 1 is each receiver getting the object exactly once.
	BytesMoved int64   `json:"bytes_moved"`
	BytesRatio float64 `json:"bytes_ratio"`
	// GossipSubBytesPerByte is what the run's GossipSub traffic cost per
	// byte delivered to a subscriber (all RPC bytes sent, control
	// included); GossipSubEquivalent is the object sent as GossipSub
	// messages at that cost: GossipSubBytesPerByte × Receivers ×
	// ObjectBytes.
	GossipSubBytesPerByte float64 `json:"gossipsub_bytes_per_byte"`
	GossipSubEquivalent   float64 `json:"gossipsub_equivalent_bytes"`
	// BadChunks, Stalls and InvOverBudget add up the honest nodes'
	// counters: what adversaries cost them.
	BadChunks     uint64 `json:"bad_chunks"`
	Stalls        uint64 `json:"stalls"`
	TailStalls    uint64 `json:"tail_stalls"`
	InvOverBudget uint64 `json:"inv_over_budget"`
}

// rolloutRun is a rollout in progress.
type rolloutRun struct {
	spec *Rollout
	path string // the object's bytes, shared by the publisher
	dir  string

	mu        sync.Mutex // guards the fields below
	invs      []*inventory.Inventory
	object    *ObjectFacts
	published time.Time
	done      []time.Duration // per node: virtual time to completion; 0 not yet
	ready     chan struct{}   // closed once the object is shared
}

// ObjectFacts is what anyone can learn of a shared object: its ID,
// manifest and leaf hashes (an adversary needs them to pose as an
// announcer).
type ObjectFacts struct {
	ID       inventory.ID
	Manifest []byte
	Leaves   [][32]byte
	Chunk    int
	Size     int
	// Path holds the object's bytes, as any node that fetched it has
	// them (read-only).
	Path string
}

func newRolloutRun(sc Scenario) (*rolloutRun, error) {
	dir, err := os.MkdirTemp("", "bitmesh-rollout-")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "firmware.bin")
	f, err := os.Create(path)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	rng := rand.New(rand.NewPCG(sc.Seed, 0xf1)) // not crypto: reproducible bytes
	buf := make([]byte, 1<<20)
	for left := sc.Rollout.Size; left > 0; left -= len(buf) {
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		if _, err := f.Write(buf[:min(left, len(buf))]); err != nil {
			f.Close()
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := f.Close(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &rolloutRun{spec: sc.Rollout, path: path, dir: dir, invs: make([]*inventory.Inventory, sc.Nodes),
		done: make([]time.Duration, sc.Nodes), ready: make(chan struct{})}, nil
}

func (r *rolloutRun) close() { os.RemoveAll(r.dir) }

// extension returns node i's inventory extension: in memory, wanting
// firmware.
func (r *rolloutRun) extension(i int) (*inventory.Inventory, error) {
	c := inventory.DefaultConfig()
	c.Types = []string{"firmware"}
	if r.spec.ChunkSize != 0 {
		c.ChunkSize = uint32(r.spec.ChunkSize)
	}
	inv, err := inventory.New(c)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.invs[i] = inv
	r.mu.Unlock()
	return inv, nil
}

// run shares the object from the publisher at share, then records each
// node's completion every virtual second until halt.
func (r *rolloutRun) run(halt context.Context, share time.Time) error {
	if !sleepUntil(halt, share) {
		return nil
	}
	r.mu.Lock()
	pub := r.invs[r.spec.Publisher]
	r.mu.Unlock()
	info, err := pub.Share(halt, r.path, inventory.ShareOptions{Type: "firmware", Name: "firmware.bin"})
	if err != nil {
		return fmt.Errorf("rollout: sharing: %w", err)
	}
	raw, leaves, err := pub.Export(info.ID)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.published = time.Now()
	r.object = &ObjectFacts{ID: info.ID, Manifest: raw, Leaves: leaves, Chunk: int(info.ChunkSize), Size: int(info.Size), Path: r.path}
	close(r.ready)
	r.mu.Unlock()
	for sleepUntil(halt, time.Now().Add(time.Second)) {
		r.mu.Lock()
		pending := 0
		for i, inv := range r.invs {
			if i == r.spec.Publisher || r.done[i] != 0 {
				continue
			}
			if got, err := inv.Info(info.ID); err == nil && got.Complete {
				r.done[i] = time.Since(r.published)
			} else {
				pending++
			}
		}
		r.mu.Unlock()
		if pending == 0 {
			return nil
		}
	}
	return nil
}

// facts waits for the object to be shared.
func (r *rolloutRun) facts(ctx context.Context) (*ObjectFacts, bool) {
	select {
	case <-r.ready:
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.object, true
	case <-ctx.Done():
		return nil, false
	}
}

// report checks every receiver's copy against the content hash and adds
// up what the rollout cost. gossipPerByte is the run's GossipSub cost.
func (r *rolloutRun) report(gossipPerByte float64) *RolloutReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := &RolloutReport{ObjectBytes: r.spec.Size, Receivers: len(r.invs) - 1, GossipSubBytesPerByte: gossipPerByte}
	rep.GossipSubEquivalent = gossipPerByte * float64(rep.Receivers) * float64(r.spec.Size)
	var secs []float64
	var want [32]byte
	if r.object != nil {
		m, err := inventory.DecodeManifest(r.object.Manifest)
		if err == nil {
			want = m.Content
		}
	}
	for i, inv := range r.invs {
		c := inv.Counters()
		rep.BytesMoved += int64(c.ServedBytes)
		rep.BadChunks += c.BadChunks
		rep.Stalls += c.Stalls
		rep.TailStalls += c.TailStalls
		rep.InvOverBudget += c.InvOverBudget
		if i == r.spec.Publisher || r.object == nil {
			continue
		}
		got, err := inv.Info(r.object.ID)
		if err != nil || !got.Complete {
			continue
		}
		rep.Complete++
		if r.done[i] != 0 {
			secs = append(secs, r.done[i].Seconds())
		}
		if content, err := inv.Content(r.object.ID); err == nil {
			h := sha256.New()
			if _, err := io.Copy(h, content); err == nil && [32]byte(h.Sum(nil)) == want {
				rep.Intact++
			}
		}
	}
	rep.CompleteSeconds = percentiles(secs)
	if rep.Receivers > 0 {
		rep.BytesRatio = float64(rep.BytesMoved) / float64(rep.Receivers) / float64(r.spec.Size)
	}
	return rep
}

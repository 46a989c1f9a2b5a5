package inventory

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// ObjectInfo describes an object in the store, as `bitmesh objects
// --json` prints it.
type ObjectInfo struct {
	ID         ID        `json:"id"`
	Type       string    `json:"type"`
	Name       string    `json:"name"`
	Size       uint64    `json:"size"`
	ChunkSize  uint32    `json:"chunk_size"`
	Chunks     int       `json:"chunks"`
	Have       int       `json:"have"` // chunks here and verified
	Complete   bool      `json:"complete"`
	Publisher  string    `json:"publisher"`
	Created    time.Time `json:"created"`
	Supersedes string    `json:"supersedes,omitempty"`
	Content    string    `json:"content_sha256"`
	Resumed    int       `json:"resumed_chunks"` // verified before this run of the node
	Fetched    int64     `json:"fetched_chunks"` // fetched from peers in this run
	Served     int64     `json:"served_chunks"`  // served to peers in this run
	Sources    int       `json:"sources"`        // peers a fetch in progress may use
	// Certified is the ID of the envelope that published the manifest on
	// ShareOptions.Certify, in the answer to the share that made it.
	Certified string `json:"certified,omitempty"`
}

// ShareOptions describe an object to share.
type ShareOptions struct {
	Type       string // required: what wants it ("firmware")
	Name       string // shown to people; the file's base name by default
	Supersedes ID     // an earlier version this node's device published; zero for none
	// Certify, if set, is a topic on which the signed manifest is also
	// published as an envelope: a node that logs the topic (meshlog)
	// appends it to its Merkle log, which makes an offline-verifiable
	// receipt of the object (`bitmesh log receipt`).
	Certify string
}

func isQuota(err error) bool { return errors.Is(err, ErrQuota) }

// Share adds the file at path to the store as an object signed by this
// node's device, and announces it. The file is read twice: once to hash
// it, once through the same checks a chunk from a peer passes; a file
// that changes in between is refused.
func (x *Inventory) Share(ctx context.Context, path string, o ShareOptions) (ObjectInfo, error) {
	x.mu.Lock()
	running := x.running
	x.mu.Unlock()
	if !running {
		return ObjectInfo{}, ErrClosed
	}
	f, err := os.Open(path)
	if err != nil {
		return ObjectInfo{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ObjectInfo{}, err
	}
	if o.Name == "" {
		o.Name = st.Name()
		if len(o.Name) > MaxNameLen {
			o.Name = o.Name[:MaxNameLen]
		}
	}
	m := Manifest{
		Network: x.h.NetworkName(), Created: x.h.Now(), Type: o.Type, Name: o.Name,
		Size: uint64(st.Size()), ChunkSize: x.cfg.ChunkSize, Supersedes: o.Supersedes,
	}
	if err := m.check(); err != nil {
		return ObjectInfo{}, err
	}
	leaves, content, err := hashFile(ctx, f, &m)
	if err != nil {
		return ObjectInfo{}, err
	}
	m.Root, m.Content = TreeRoot(leaves), content
	id, err := m.Sign(x.h.Key())
	if err != nil {
		return ObjectInfo{}, err
	}
	raw, err := m.Encode()
	if err != nil {
		return ObjectInfo{}, err
	}
	if _, created, err := x.store.Create(raw); err != nil {
		return ObjectInfo{}, err
	} else if !created && x.store.Complete(id) {
		return x.Info(id)
	}
	if err := x.importFile(ctx, f, id, &m, leaves); err != nil {
		_ = x.store.Remove(id)
		return ObjectInfo{}, err
	}
	var certified string
	if o.Certify != "" {
		env, err := x.h.Publish(ctx, o.Certify, raw)
		if err != nil {
			return ObjectInfo{}, fmt.Errorf("inventory: certifying %s on %q: %w", id, o.Certify, err)
		}
		certified = env.String()
	}
	x.completed(id)
	info, err := x.Info(id)
	info.Certified = certified
	return info, err
}

// hashFile reads f once for its leaf hashes and content hash.
func hashFile(ctx context.Context, f io.ReaderAt, m *Manifest) ([][32]byte, [32]byte, error) {
	lh, content := NewLeafHasher(), sha256.New()
	buf := make([]byte, m.ChunkSize)
	leaves := make([][32]byte, m.Chunks())
	for i := range leaves {
		if err := ctx.Err(); err != nil {
			return nil, [32]byte{}, err
		}
		c := buf[:m.ChunkLen(i)]
		if _, err := f.ReadAt(c, int64(i)*int64(m.ChunkSize)); err != nil && !errors.Is(err, io.EOF) {
			return nil, [32]byte{}, err
		}
		leaves[i] = lh.Sum(c)
		content.Write(c)
	}
	return leaves, [32]byte(content.Sum(nil)), nil
}

// importFile puts the file's chunks into the store through VerifyChunk
// and Commit, as chunks from a peer go.
func (x *Inventory) importFile(ctx context.Context, f io.ReaderAt, id ID, m *Manifest, leaves [][32]byte) error {
	if err := x.store.SetLeaves(id, leaves); err != nil {
		return err
	}
	h := NewLeafHasher()
	const batch = MaxChunksPerRequest
	buf := make([]byte, batch*int(m.ChunkSize))
	for first := 0; first < m.Chunks(); first += batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		var vs []Verified
		off := 0
		for i := first; i < min(first+batch, m.Chunks()); i++ {
			c := buf[off : off+m.ChunkLen(i)]
			if _, err := f.ReadAt(c, int64(i)*int64(m.ChunkSize)); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			v, err := x.store.VerifyChunk(h, id, uint32(i), c)
			if err != nil {
				return fmt.Errorf("inventory: the file changed while it was shared: %w", err)
			}
			vs = append(vs, v)
			off += len(c)
		}
		if _, err := x.store.Commit(id, vs); err != nil {
			return err
		}
	}
	return nil
}

// Info describes object id.
func (x *Inventory) Info(id ID) (ObjectInfo, error) {
	if x.store == nil {
		return ObjectInfo{}, ErrClosed
	}
	info, err := x.store.Info(id)
	if err != nil {
		return ObjectInfo{}, err
	}
	x.mu.Lock()
	if f, ok := x.downloads[id]; ok {
		info.Sources = f.core.usable()
	}
	x.mu.Unlock()
	return info, nil
}

// Objects describes every object in the store, complete or not.
func (x *Inventory) Objects() []ObjectInfo {
	out := []ObjectInfo{}
	if x.store == nil {
		return out
	}
	for _, id := range x.store.IDs() {
		if info, err := x.Info(id); err == nil {
			out = append(out, info)
		}
	}
	return out
}

// Content returns a reader of a complete object's bytes.
func (x *Inventory) Content(id ID) (*io.SectionReader, error) {
	if x.store == nil {
		return nil, ErrClosed
	}
	return x.store.Content(id)
}

// StartFetch starts fetching id, if it is neither here nor being fetched,
// and returns at once.
func (x *Inventory) StartFetch(id ID) error {
	_, err := x.startFetch(id)
	return err
}

// Export returns a complete object's manifest encoding and leaf hashes:
// what a peer fetches before its chunks.
func (x *Inventory) Export(id ID) ([]byte, [][32]byte, error) {
	if x.store == nil {
		return nil, nil, ErrClosed
	}
	if !x.store.Complete(id) {
		return nil, nil, fmt.Errorf("%w: %s", ErrIncomplete, id)
	}
	_, raw, err := x.store.Manifest(id)
	if err != nil {
		return nil, nil, err
	}
	return raw, x.store.Leaves(id), nil
}

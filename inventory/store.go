package inventory

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/bitmesh/bitmesh/internal/atomicfile"
)

// Store keeps objects: each in its own directory, named by its ID, under
// the store's directory (PROTOCOL.md §20.5):
//
//	manifest  the signed manifest (written once, atomically)
//	leaves    the chunk leaf hashes, 32 bytes each (atomically, once checked against the root)
//	data      the object's bytes, chunk i at i × ChunkSize
//	have      append-only log of verified chunks: u32 index, u32 CRC-32C of the index
//
// A chunk is acknowledged once its bytes are synced in data and then its
// record in have: a restarted node never fetches it again. Every chunk
// enters through VerifyChunk, which checks it against the leaf the
// manifest's root commits to, and Commit, which takes only chunks
// VerifyChunk returned. Safe for concurrent access.
type Store struct {
	dir     string // "" keeps everything in memory
	network string
	quota   func(typ string) uint64

	mu      sync.Mutex // guards objects
	objects map[ID]*object
}

// object is one object in the store.
type object struct {
	id   ID
	m    *Manifest // set at creation, never modified
	raw  []byte    // the manifest's encoding, likewise
	dir  string
	data blob
	log  blob

	// syncMu serialises Commit's syncs and have-log appends, and is held
	// by whoever closes the files; taken before mu. Stage and reads go on
	// while a Commit waits for the disk.
	syncMu  sync.Mutex
	logSize int64 // guarded by syncMu

	mu        sync.Mutex // guards the fields below
	leaves    [][32]byte
	have      []bool
	haveCount int
	complete  bool
	removed   bool
	staged    map[uint32]bool // chunks written by Stage, not yet committed

	resumed int          // chunks verified before this run; set at open
	fetched atomic.Int64 // chunks committed from peers in this run
	served  atomic.Int64 // chunks served to peers in this run
}

const haveRecordSize = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func haveRecord(i uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, i)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// OpenStore opens the store in dir (created if missing; "" for one in
// memory) for network's objects. quota gives each type's byte bound. It
// refuses a damaged file with an error naming it (ErrCorruptStore); it
// repairs what a crash can leave (a torn last record of a have log, an
// object directory never finished) and returns what it repaired, and
// drops chunks whose bytes no longer hash to their leaf, to be fetched
// again.
func OpenStore(dir, network string, quota func(typ string) uint64) (*Store, []string, error) {
	s := &Store{dir: dir, network: network, quota: quota, objects: make(map[ID]*object)}
	if dir == "" {
		return s, nil, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var notes []string
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if strings.HasSuffix(e.Name(), ".tmp") {
			// An object whose creation a crash interrupted: nothing of it
			// was acknowledged.
			if err := os.RemoveAll(path); err != nil {
				return nil, nil, err
			}
			notes = append(notes, "removed unfinished "+path)
			continue
		}
		id, err := ParseID(e.Name())
		if err != nil || !e.IsDir() {
			return nil, nil, fmt.Errorf("%w: %s is not an object directory", ErrCorruptStore, path)
		}
		o, n, err := s.openObject(id, path)
		if err != nil {
			s.Close()
			return nil, nil, err
		}
		notes = append(notes, n...)
		s.objects[id] = o
	}
	return s, notes, nil
}

func corrupt(path string, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrCorruptStore, path, fmt.Sprintf(format, args...))
}

// openObject opens one object directory.
func (s *Store) openObject(id ID, dir string) (*object, []string, error) {
	mpath := filepath.Join(dir, "manifest")
	raw, err := os.ReadFile(mpath)
	if err != nil {
		return nil, nil, corrupt(mpath, "%v", err)
	}
	m, err := DecodeManifest(raw)
	if err != nil {
		return nil, nil, corrupt(mpath, "%v", err)
	}
	got, err := m.Verify(s.network)
	if err != nil {
		return nil, nil, corrupt(mpath, "%v", err)
	}
	if got != id {
		return nil, nil, corrupt(mpath, "manifest of %s in the directory of %s", got, id)
	}
	o := &object{id: id, m: m, raw: raw, dir: dir, have: make([]bool, m.Chunks())}
	lpath := filepath.Join(dir, "leaves")
	if b, err := os.ReadFile(lpath); err == nil {
		if len(b) != 32*m.Chunks() {
			return nil, nil, corrupt(lpath, "%d bytes for %d chunks", len(b), m.Chunks())
		}
		o.leaves = make([][32]byte, m.Chunks())
		for i := range o.leaves {
			copy(o.leaves[i][:], b[32*i:])
		}
		if err := CheckLeaves(m, o.leaves); err != nil {
			return nil, nil, corrupt(lpath, "%v", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, corrupt(lpath, "%v", err)
	}
	dpath := filepath.Join(dir, "data")
	data, err := os.OpenFile(dpath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, corrupt(dpath, "%v", err)
	}
	o.data = data
	hpath := filepath.Join(dir, "have")
	hf, err := os.OpenFile(hpath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		data.Close()
		return nil, nil, corrupt(hpath, "%v", err)
	}
	o.log = hf
	notes, err := o.replayHave(hpath, hf)
	if err != nil {
		o.close()
		return nil, nil, err
	}
	dropped, err := o.recheck()
	if err != nil {
		o.close()
		return nil, nil, corrupt(dpath, "%v", err)
	}
	for _, i := range dropped {
		notes = append(notes, fmt.Sprintf("%s: chunk %d no longer matches its hash; fetching it again", dpath, i))
	}
	o.resumed = o.haveCount
	o.complete = o.haveCount == m.Chunks()
	return o, notes, nil
}

// replayHave reads the have log; a torn last record (a crash during its
// append: not acknowledged) is cut off.
func (o *object) replayHave(path string, f *os.File) ([]string, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, corrupt(path, "%v", err)
	}
	size := st.Size()
	if size > int64(MaxChunks+1)*haveRecordSize*4 {
		return nil, corrupt(path, "%d bytes", size)
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, corrupt(path, "%v", err)
	}
	var notes []string
	if tail := size % haveRecordSize; tail != 0 {
		size -= tail
		if err := f.Truncate(size); err != nil {
			return nil, corrupt(path, "cutting a torn record: %v", err)
		}
		notes = append(notes, fmt.Sprintf("%s: cut a torn last record (%d bytes)", path, tail))
		b = b[:size]
	}
	if size > 0 && o.leaves == nil {
		return nil, corrupt(path, "chunks recorded before the leaves")
	}
	for off := 0; off < len(b); off += haveRecordSize {
		i := binary.BigEndian.Uint32(b[off:])
		if crc32.Checksum(b[off:off+4], castagnoli) != binary.BigEndian.Uint32(b[off+4:]) {
			return nil, corrupt(path, "record %d: bad checksum", off/haveRecordSize)
		}
		if int(i) >= len(o.have) {
			return nil, corrupt(path, "record %d: chunk %d of %d", off/haveRecordSize, i, len(o.have))
		}
		if !o.have[i] {
			o.have[i] = true
			o.haveCount++
		}
	}
	o.logSize = size
	return notes, nil
}

// recheck hashes every recorded chunk again and forgets those that no
// longer match their leaf (a damaged disk): they are fetched again. It
// returns their indices.
func (o *object) recheck() ([]int, error) {
	var dropped []int
	h := NewLeafHasher()
	buf := make([]byte, o.m.ChunkSize)
	for i, ok := range o.have {
		if !ok {
			continue
		}
		c := buf[:o.m.ChunkLen(i)]
		if _, err := o.data.ReadAt(c, int64(i)*int64(o.m.ChunkSize)); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if h.Sum(c) != o.leaves[i] {
			o.have[i] = false
			o.haveCount--
			dropped = append(dropped, i)
		}
	}
	return dropped, nil
}

func (o *object) close() {
	if o.data != nil {
		o.data.Close()
	}
	if o.log != nil {
		o.log.Close()
	}
}

// Close closes every object's files.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.objects {
		o.syncMu.Lock()
		o.mu.Lock()
		o.close()
		o.removed = true
		o.mu.Unlock()
		o.syncMu.Unlock()
	}
	s.objects = map[ID]*object{}
	return nil
}

func (s *Store) get(id ID) (*object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return o, nil
}

// usedLocked is the bytes of typ's objects; s.mu held.
func (s *Store) usedLocked(typ string) uint64 {
	var n uint64
	for _, o := range s.objects {
		if o.m.Type == typ {
			n += o.m.Size
		}
	}
	return n
}

// Create adds an object from its manifest's encoding, checked as one from
// a peer is: decoded, signed, this network's; within its type's quota. It
// reports whether the object is new; an object already here is left as
// it is.
func (s *Store) Create(raw []byte) (ID, bool, error) {
	m, err := DecodeManifest(raw)
	if err != nil {
		return ID{}, false, err
	}
	id, err := m.Verify(s.network)
	if err != nil {
		return ID{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.objects[id]; ok {
		return id, false, nil
	}
	if used, q := s.usedLocked(m.Type), s.quota(m.Type); used+m.Size > q || used+m.Size < used {
		return ID{}, false, fmt.Errorf("%w: %q holds %d bytes, bound %d, object of %d", ErrQuota, m.Type, used, q, m.Size)
	}
	o := &object{id: id, m: m, raw: slices.Clone(raw), have: make([]bool, m.Chunks())}
	if s.dir == "" {
		o.data, o.log = &memBlob{size: int64(m.Size)}, &memBlob{}
	} else if err := s.createDir(o); err != nil {
		return ID{}, false, err
	}
	s.objects[id] = o
	return id, true, nil
}

// createDir makes o's directory: built under a .tmp name and renamed, so a
// crash leaves a whole object directory or none.
func (s *Store) createDir(o *object) error {
	final := filepath.Join(s.dir, o.id.String())
	tmp := final + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return err
	}
	if err := atomicfile.Replace(filepath.Join(tmp, "manifest"), o.raw, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(s.dir); err != nil {
		return err
	}
	o.dir = final
	var err error
	if o.data, err = os.OpenFile(filepath.Join(final, "data"), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return err
	}
	if o.log, err = os.OpenFile(filepath.Join(final, "have"), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		o.data.Close()
		return err
	}
	return nil
}

// SetLeaves stores id's leaf hashes once they are checked against its
// root. Leaves already stored are kept.
func (s *Store) SetLeaves(id ID, leaves [][32]byte) error {
	o, err := s.get(id)
	if err != nil {
		return err
	}
	if err := CheckLeaves(o.m, leaves); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.removed {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if o.leaves != nil {
		return nil
	}
	if o.dir != "" {
		b := make([]byte, 0, 32*len(leaves))
		for _, l := range leaves {
			b = append(b, l[:]...)
		}
		if err := atomicfile.Replace(filepath.Join(o.dir, "leaves"), b, 0o600); err != nil {
			return err
		}
	}
	o.leaves = slices.Clone(leaves)
	return nil
}

// Verified is a chunk that VerifyChunk found to match its leaf: the only
// kind Commit takes.
type Verified struct {
	index uint32
	data  []byte
}

// VerifyChunk checks chunk i of id against its leaf hash. data is kept
// (not copied) in the Verified until Commit.
func (s *Store) VerifyChunk(h *LeafHasher, id ID, i uint32, data []byte) (Verified, error) {
	o, err := s.get(id)
	if err != nil {
		return Verified{}, err
	}
	o.mu.Lock()
	leaves := o.leaves
	o.mu.Unlock()
	if leaves == nil {
		return Verified{}, fmt.Errorf("%w: no leaves of %s yet", ErrIncomplete, id)
	}
	if int(i) >= len(leaves) || len(data) != o.m.ChunkLen(int(i)) {
		return Verified{}, fmt.Errorf("%w: chunk %d of %d bytes", ErrBadChunk, i, len(data))
	}
	if h.Sum(data) != leaves[i] {
		return Verified{}, fmt.Errorf("%w: chunk %d of %s", ErrBadChunk, i, id)
	}
	return Verified{index: i, data: data}, nil
}

// Stage writes a verified chunk's bytes without syncing them or
// recording the chunk, and returns it without its bytes, for Commit: a
// fetch then holds one chunk in memory, not a whole request.
func (s *Store) Stage(id ID, v Verified) (Verified, error) {
	o, err := s.get(id)
	if err != nil {
		return Verified{}, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.removed {
		return Verified{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if !o.have[v.index] {
		if _, err := o.data.WriteAt(v.data, int64(v.index)*int64(o.m.ChunkSize)); err != nil {
			return Verified{}, err
		}
		if o.staged == nil {
			o.staged = make(map[uint32]bool)
		}
		o.staged[v.index] = true
	}
	return Verified{index: v.index}, nil
}

// Commit writes verified chunks durably: their bytes (unless Stage wrote
// them), a sync, their have records, a sync. Once it returns nil they
// are acknowledged. It reports whether the object is now complete. The
// chunks' leaves hash to the signed root, which binds every byte: the
// manifest's content hash is not checked again here (a second pass over
// the object), but by whoever writes the object out (`bitmesh fetch`,
// Content's callers).
func (s *Store) Commit(id ID, chunks []Verified) (complete bool, err error) {
	o, err := s.get(id)
	if err != nil {
		return false, err
	}
	o.syncMu.Lock()
	defer o.syncMu.Unlock()
	o.mu.Lock()
	if o.removed {
		o.mu.Unlock()
		return false, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	var recs []byte
	seen := make(map[uint32]bool, len(chunks))
	for _, c := range chunks {
		if o.have[c.index] || seen[c.index] {
			continue // a chunk two sources both delivered is recorded once
		}
		seen[c.index] = true
		switch {
		case c.data != nil:
			if _, err := o.data.WriteAt(c.data, int64(c.index)*int64(o.m.ChunkSize)); err != nil {
				o.mu.Unlock()
				return false, err
			}
		case !o.staged[c.index]:
			o.mu.Unlock()
			return false, fmt.Errorf("inventory: chunk %d of %s committed without its bytes", c.index, id)
		}
		recs = append(recs, haveRecord(c.index)...)
	}
	done := o.complete
	o.mu.Unlock()
	if len(recs) == 0 {
		return done, nil
	}
	// The files stay open: closing them takes syncMu.
	if err := o.data.Sync(); err != nil {
		return false, err
	}
	if _, err := o.log.WriteAt(recs, o.logSize); err != nil {
		return false, err
	}
	if err := o.log.Sync(); err != nil {
		return false, err
	}
	o.logSize += int64(len(recs))
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, c := range chunks {
		if !o.have[c.index] {
			o.have[c.index] = true
			o.haveCount++
		}
		delete(o.staged, c.index)
	}
	o.complete = o.haveCount == len(o.have)
	return o.complete, nil
}

// Remove deletes an object and its files.
func (s *Store) Remove(id ID) error {
	s.mu.Lock()
	o, ok := s.objects[id]
	delete(s.objects, id)
	s.mu.Unlock()
	if !ok {
		return nil
	}
	o.syncMu.Lock()
	defer o.syncMu.Unlock()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.removed = true
	o.close()
	if o.dir == "" {
		return nil
	}
	if err := os.RemoveAll(o.dir); err != nil {
		return err
	}
	return atomicfile.SyncDir(s.dir)
}

// completeObject returns a complete object; one still being fetched is
// ErrIncomplete (a peer asking for it gets notfound).
func (s *Store) completeObject(id ID) (*object, error) {
	o, err := s.get(id)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.complete {
		return nil, fmt.Errorf("%w: %s: %d of %d chunks", ErrIncomplete, id, o.haveCount, len(o.have))
	}
	return o, nil
}

// Manifest returns id's manifest and its encoding.
func (s *Store) Manifest(id ID) (*Manifest, []byte, error) {
	o, err := s.get(id)
	if err != nil {
		return nil, nil, err
	}
	return o.m, o.raw, nil
}

// Leaves returns id's leaf hashes, nil before they are fetched.
func (s *Store) Leaves(id ID) [][32]byte {
	o, err := s.get(id)
	if err != nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.leaves
}

// Have returns which chunks of id are here.
func (s *Store) Have(id ID) []bool {
	o, err := s.get(id)
	if err != nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.have)
}

// ReadChunk reads chunk i of a complete object into buf (ChunkSize bytes
// at least) and returns it.
func (s *Store) ReadChunk(id ID, i uint32, buf []byte) ([]byte, error) {
	o, err := s.completeObject(id)
	if err != nil {
		return nil, err
	}
	if int(i) >= o.m.Chunks() {
		return nil, fmt.Errorf("%w: chunk %d of %d", ErrNotFound, i, o.m.Chunks())
	}
	c := buf[:o.m.ChunkLen(int(i))]
	if _, err := o.data.ReadAt(c, int64(i)*int64(o.m.ChunkSize)); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	o.served.Add(1)
	return c, nil
}

// Content returns a reader of a complete object's bytes.
func (s *Store) Content(id ID) (*io.SectionReader, error) {
	o, err := s.completeObject(id)
	if err != nil {
		return nil, err
	}
	return io.NewSectionReader(o.data, 0, int64(o.m.Size)), nil
}

// Complete reports whether id is here whole.
func (s *Store) Complete(id ID) bool {
	_, err := s.completeObject(id)
	return err == nil
}

// IDs lists the objects, complete or not.
func (s *Store) IDs() []ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ID, 0, len(s.objects))
	for id := range s.objects {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b ID) int { return strings.Compare(string(a[:]), string(b[:])) })
	return out
}

// Info describes id.
func (s *Store) Info(id ID) (ObjectInfo, error) {
	o, err := s.get(id)
	if err != nil {
		return ObjectInfo{}, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	info := ObjectInfo{
		ID: id, Type: o.m.Type, Name: o.m.Name, Size: o.m.Size, ChunkSize: o.m.ChunkSize,
		Chunks: len(o.have), Have: o.haveCount, Complete: o.complete,
		Publisher: o.m.Publisher.String(), Created: o.m.Created,
		Content: fmt.Sprintf("%x", o.m.Content), Resumed: o.resumed,
		Fetched: o.fetched.Load(), Served: o.served.Load(),
	}
	if !o.m.Supersedes.IsZero() {
		info.Supersedes = o.m.Supersedes.String()
	}
	return info, nil
}

// countFetched adds n chunks fetched from peers to id's count.
func (s *Store) countFetched(id ID, n int) {
	if o, err := s.get(id); err == nil {
		o.fetched.Add(int64(n))
	}
}

// Supersede removes the object m supersedes if it is here and has the
// same publisher (another publisher cannot retire someone's object); it
// returns the removed ID.
func (s *Store) Supersede(m *Manifest) (ID, bool, error) {
	if m.Supersedes.IsZero() {
		return ID{}, false, nil
	}
	old, err := s.get(m.Supersedes)
	if err != nil || old.m.Publisher != m.Publisher {
		return ID{}, false, nil
	}
	return m.Supersedes, true, s.Remove(m.Supersedes)
}

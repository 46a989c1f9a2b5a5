package anchor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/bitmesh/bitmesh/internal/storecheck"
	"github.com/transparency-dev/merkle/compact"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Store persists any number of named logs: each log's leaf data by index,
// the hashes of its complete subtrees (nodes) by level and index, and its
// size. A Log is the only writer of its name; a Store must be safe for
// concurrent use, and reads may run while a Commit is under way.
type Store interface {
	// Size returns the committed size of the named log, 0 for an unknown
	// name.
	Size(name string) (uint64, error)
	// Leaves returns copies of the data of leaves [start, start+n). A leaf
	// that is absent makes it fail with an error wrapping ErrNotFound.
	Leaves(name string, start uint64, n int) ([][]byte, error)
	// Nodes returns the hashes of the given nodes, in order. A node that is
	// absent makes it fail with an error wrapping ErrNotFound.
	Nodes(name string, ids []compact.NodeID) ([][]byte, error)
	// Commit stores the batch's leaves at indices OldSize.., its nodes and
	// the new size OldSize+len(Leaves) atomically, and returns only once
	// they are durable. It fails with ErrConflict, storing nothing, if the
	// stored size is not OldSize.
	Commit(name string, b Batch) error
	// Close releases the store; later calls fail with ErrStoreClosed.
	Close() error
}

// Batch is one atomic, durable extension of a log.
type Batch struct {
	// OldSize is the log size the batch extends; its first leaf gets this
	// index.
	OldSize uint64
	// Leaves are the appended leaves' data.
	Leaves [][]byte
	// Nodes are every subtree hash completed by the batch, the leaf hashes
	// (level 0) included.
	Nodes []Node
}

// Node is the hash of the complete subtree ID.
type Node struct {
	ID   compact.NodeID
	Hash []byte
}

// MaxNameLen bounds a log name in bytes (it is a bbolt bucket key).
const MaxNameLen = 255

func checkName(name string) error {
	if len(name) == 0 || len(name) > MaxNameLen {
		return fmt.Errorf("%w: %d bytes, want 1..%d", ErrInvalidName, len(name), MaxNameLen)
	}
	return nil
}

var _ Store = (*MemoryStore)(nil)

// MemoryStore is a Store in memory, for tests and for logs that need not
// survive a restart. Safe for concurrent use.
type MemoryStore struct {
	mu     sync.RWMutex // guards logs, meta and closed
	logs   map[string]*memoryLog
	meta   map[string]map[string][]byte // MetaStore records by log name, then key
	closed bool
}

type memoryLog struct {
	leaves [][]byte
	nodes  map[compact.NodeID][]byte
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{logs: make(map[string]*memoryLog)}
}

// Size implements Store.
func (s *MemoryStore) Size(name string) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrStoreClosed
	}
	if lg := s.logs[name]; lg != nil {
		return uint64(len(lg.leaves)), nil
	}
	return 0, nil
}

// Leaves implements Store.
func (s *MemoryStore) Leaves(name string, start uint64, n int) ([][]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrStoreClosed
	}
	lg := s.logs[name]
	size := uint64(0)
	if lg != nil {
		size = uint64(len(lg.leaves))
	}
	if n < 0 || start > size || uint64(n) > size-start {
		return nil, fmt.Errorf("%w: leaves [%d, +%d) of log %q (size %d)", ErrNotFound, start, n, name, size)
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = append([]byte(nil), lg.leaves[start+uint64(i)]...)
	}
	return out, nil
}

// Nodes implements Store.
func (s *MemoryStore) Nodes(name string, ids []compact.NodeID) ([][]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrStoreClosed
	}
	lg := s.logs[name]
	out := make([][]byte, len(ids))
	for i, id := range ids {
		var h []byte
		if lg != nil {
			h = lg.nodes[id]
		}
		if h == nil {
			return nil, fmt.Errorf("%w: node (%d, %d) of log %q", ErrNotFound, id.Level, id.Index, name)
		}
		out[i] = append([]byte(nil), h...)
	}
	return out, nil
}

// Commit implements Store.
func (s *MemoryStore) Commit(name string, b Batch) error {
	if err := checkName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrStoreClosed
	}
	lg := s.logs[name]
	if lg == nil {
		lg = &memoryLog{nodes: make(map[compact.NodeID][]byte)}
		s.logs[name] = lg
	}
	if size := uint64(len(lg.leaves)); size != b.OldSize {
		return fmt.Errorf("%w: log %q has size %d, batch extends %d", ErrConflict, name, size, b.OldSize)
	}
	for _, d := range b.Leaves {
		lg.leaves = append(lg.leaves, append([]byte(nil), d...))
	}
	for _, n := range b.Nodes {
		lg.nodes[n.ID] = append([]byte(nil), n.Hash...)
	}
	return nil
}

// Close implements Store.
func (s *MemoryStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

var _ Store = (*BoltStore)(nil)

// BoltStore is a Store in a bbolt file. Every Commit is one bbolt
// transaction, fsynced before it returns, holding the leaves, the nodes and
// the size record together: after a crash the file holds either all of a
// batch or none of it, so the size never points past stored leaves. Safe for
// concurrent use.
//
// Layout: bucket "anchor/logs" / one bucket per log name, holding the key
// "size" (uint64 big-endian) and the buckets "leaves" (key: index, 8 bytes
// big-endian) and "nodes" (value: 32-byte hash; key: see boltNodeKey).
type BoltStore struct {
	db   *bolt.DB // set at creation; bbolt reports use after Close
	path string   // set at creation, never modified
}

var (
	boltRootBucket   = []byte("anchor/logs")
	boltLeavesBucket = []byte("leaves")
	boltNodesBucket  = []byte("nodes")
	boltSizeKey      = []byte("size")
)

// boltLockTimeout is how long OpenBoltStore waits for the file lock: long
// enough to ride out a previous process that is still exiting, short enough
// that a second node on the same directory fails at once with a clear error.
const boltLockTimeout = time.Second

// OpenBoltStore opens or creates the store at path (mode 0600). It fails
// with ErrStoreLocked if another process holds the file for more than a
// second, and with an error wrapping ErrStoreDamaged, naming the file and
// the repair command, if the file exists but is damaged (see
// internal/storecheck: empty, cut short, invalid meta pages, or a bbolt
// consistency check failure). Opening reads the whole file once to check it.
// It does not check the logs' hashes: CheckLogs does.
func OpenBoltStore(path string) (*BoltStore, error) {
	opts := *bolt.DefaultOptions
	opts.Timeout = boltLockTimeout
	db, err := storecheck.Open(path, 0o600, &opts)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrStoreLocked, path)
	}
	if errors.Is(err, storecheck.ErrDamaged) {
		return nil, fmt.Errorf("anchor: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("anchor: open store %s: %w", path, err)
	}
	return &BoltStore{db: db, path: path}, nil
}

// Path returns the file the store was opened from.
func (s *BoltStore) Path() string { return s.path }

// Names returns the names of the logs in the store, sorted.
func (s *BoltStore) Names() ([]string, error) {
	var names []string
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		names, err = logNames(tx)
		return err
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return nil, ErrStoreClosed
	}
	return names, err
}

// CheckLogs opens every log in the store and verifies it from its leaves
// (Log.Verify: O(size) reads and hashes). The first damaged log gives an
// error wrapping both ErrCorrupt and ErrStoreDamaged that names the file,
// the log, the first bad leaf and the repair command. No Log of the store
// may be open for writing meanwhile.
func (s *BoltStore) CheckLogs() error {
	names, err := s.Names()
	if err != nil {
		return err
	}
	for _, name := range names {
		l, err := OpenLog(s, name)
		if err == nil {
			err = l.Verify()
			l.Close()
		}
		if errors.Is(err, ErrCorrupt) {
			return fmt.Errorf("%w (%w)", storecheck.Damaged(s.path, "log %q is corrupt", name), err)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// boltNodeKey is the end of the node's leaf range, (index+1)<<level, 8 bytes
// big-endian, then its level, 1 byte. Appending leaf i completes (0, i), then
// its ancestors level by level, all ending at i+1: in this order keys only
// grow, so every Put lands at the bucket's right edge. (Level-first keys put
// each leaf hash in the middle of the bucket: bbolt then shifts a node's
// entries on every Put, quadratic in the batch size.)
func boltNodeKey(id compact.NodeID) []byte {
	var k [9]byte
	binary.BigEndian.PutUint64(k[:8], (id.Index+1)<<id.Level)
	k[8] = byte(id.Level)
	return k[:]
}

func boltIndexKey(i uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, i)
}

// view runs fn on the named log's bucket, nil if the log does not exist.
func (s *BoltStore) view(name string, fn func(b *bolt.Bucket) error) error {
	err := s.db.View(func(tx *bolt.Tx) error {
		var b *bolt.Bucket
		if root := tx.Bucket(boltRootBucket); root != nil {
			b = root.Bucket([]byte(name))
		}
		return fn(b)
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrStoreClosed
	}
	return err
}

func boltSize(b *bolt.Bucket) (uint64, error) {
	if b == nil {
		return 0, nil
	}
	v := b.Get(boltSizeKey)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: size record of %d bytes", ErrCorrupt, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Size implements Store.
func (s *BoltStore) Size(name string) (uint64, error) {
	var size uint64
	err := s.view(name, func(b *bolt.Bucket) (err error) {
		size, err = boltSize(b)
		return err
	})
	return size, err
}

// Leaves implements Store.
func (s *BoltStore) Leaves(name string, start uint64, n int) ([][]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("%w: %d leaves", ErrNotFound, n)
	}
	out := make([][]byte, 0, n)
	err := s.view(name, func(b *bolt.Bucket) error {
		var lb *bolt.Bucket
		if b != nil {
			lb = b.Bucket(boltLeavesBucket)
		}
		if lb == nil {
			if n == 0 {
				return nil
			}
			return fmt.Errorf("%w: leaf %d of log %q", ErrNotFound, start, name)
		}
		c := lb.Cursor()
		k, v := c.Seek(boltIndexKey(start))
		for i := uint64(0); i < uint64(n); i++ {
			// Leaves are only ever appended at the next index, so keys are
			// contiguous; a gap is reported, not skipped.
			if k == nil || binary.BigEndian.Uint64(k) != start+i {
				return fmt.Errorf("%w: leaf %d of log %q", ErrNotFound, start+i, name)
			}
			out = append(out, append([]byte(nil), v...))
			k, v = c.Next()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Nodes implements Store.
func (s *BoltStore) Nodes(name string, ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	err := s.view(name, func(b *bolt.Bucket) error {
		var nb *bolt.Bucket
		if b != nil {
			nb = b.Bucket(boltNodesBucket)
		}
		for i, id := range ids {
			var v []byte
			if nb != nil {
				v = nb.Get(boltNodeKey(id))
			}
			if v == nil {
				return fmt.Errorf("%w: node (%d, %d) of log %q", ErrNotFound, id.Level, id.Index, name)
			}
			out[i] = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// update runs fn on the named log's bucket, created if need be, in one
// fsynced bbolt transaction.
func (s *BoltStore) update(name string, fn func(b *bolt.Bucket) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(boltRootBucket)
		if err != nil {
			return err
		}
		b, err := root.CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return err
		}
		return fn(b)
	})
}

// logNames lists the logs of a store, sorted (bbolt's key order).
func logNames(tx *bolt.Tx) ([]string, error) {
	var names []string
	root := tx.Bucket(boltRootBucket)
	if root == nil {
		return nil, nil
	}
	err := root.ForEach(func(k, _ []byte) error {
		names = append(names, string(k))
		return nil
	})
	return names, err
}

// Commit implements Store: one fsynced bbolt transaction per batch.
func (s *BoltStore) Commit(name string, batch Batch) error {
	if err := checkName(name); err != nil {
		return err
	}
	err := s.update(name, func(b *bolt.Bucket) error {
		size, err := boltSize(b)
		if err != nil {
			return err
		}
		if size != batch.OldSize {
			return fmt.Errorf("%w: log %q has size %d, batch extends %d", ErrConflict, name, size, batch.OldSize)
		}
		lb, err := b.CreateBucketIfNotExists(boltLeavesBucket)
		if err != nil {
			return err
		}
		nb, err := b.CreateBucketIfNotExists(boltNodesBucket)
		if err != nil {
			return err
		}
		// Both buckets only grow at their right edge (see boltNodeKey), so
		// full pages waste no space.
		lb.FillPercent, nb.FillPercent = 1, 1
		for i, d := range batch.Leaves {
			if err := lb.Put(boltIndexKey(size+uint64(i)), d); err != nil {
				return err
			}
		}
		for _, n := range batch.Nodes {
			if err := nb.Put(boltNodeKey(n.ID), n.Hash); err != nil {
				return err
			}
		}
		return b.Put(boltSizeKey, boltIndexKey(size+uint64(len(batch.Leaves))))
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrStoreClosed
	}
	return err
}

// Close implements Store.
func (s *BoltStore) Close() error {
	return s.db.Close()
}

// SalvagedLeaf is one leaf read by SalvageBoltStore. Data is valid only
// during the callback.
type SalvagedLeaf struct {
	Log   string
	Index uint64
	Data  []byte
	// Intact is true while every leaf of the log up to this one hashes to
	// its stored level-0 node; from the first that does not (or whose node
	// is missing) on, it is false for the rest of the log.
	Intact bool
}

// SalvagedLog sums up what SalvageBoltStore read of one log.
type SalvagedLog struct {
	Name   string
	Size   uint64 // the stored size record; 0 if unreadable
	Read   uint64 // leaves read, from index 0 without a gap
	Intact uint64 // leading leaves whose hash matched their stored node
	// Err says why reading stopped before Size leaves, or why leaf Intact
	// is not intact; nil if the whole log was read intact.
	Err error
	// Meta holds the log's readable MetaStore records (a node's signed
	// checkpoints), copied.
	Meta map[string][]byte
}

// SalvageBoltStore reads what it can of a possibly damaged store file,
// read-only and without checking it first, for `bitmesh repair`: for each
// log, its leaves from index 0 on, in order, each passed to leaf, until a
// gap or the first page bbolt cannot read. Memory faults and panics inside
// bbolt end the log being read (or, if they happen while opening, the
// salvage) with an error instead of crashing. An error from leaf stops the
// salvage and is returned.
func SalvageBoltStore(path string, leaf func(SalvagedLeaf) error) (logs []SalvagedLog, err error) {
	if err := salvageable(path); err != nil {
		return nil, fmt.Errorf("anchor: salvage %s: %w", path, err)
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var db *bolt.DB
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%w: bbolt failed opening %s: %v", ErrCorrupt, path, r)
			}
		}()
		opts := *bolt.DefaultOptions
		opts.Timeout = boltLockTimeout
		opts.ReadOnly = true // no freelist load, no write: fewer places to trip
		db, err = bolt.Open(path, 0o400, &opts)
	}()
	if err != nil {
		return nil, fmt.Errorf("anchor: salvage %s: %w", path, err)
	}
	defer db.Close()
	var names []string
	err = salvageView(db, func(tx *bolt.Tx) (err error) {
		names, err = logNames(tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: listing logs: %v", ErrCorrupt, path, err)
	}
	for _, name := range names {
		sl := SalvagedLog{Name: name}
		var cbErr error
		sl.Err = salvageView(db, func(tx *bolt.Tx) error {
			b := tx.Bucket(boltRootBucket).Bucket([]byte(name))
			if b == nil {
				return errors.New("not a bucket")
			}
			sl.Size, _ = boltSize(b)
			if mb := b.Bucket(boltMetaBucket); mb != nil {
				sl.Meta = map[string][]byte{}
				_ = mb.ForEach(func(k, v []byte) error {
					sl.Meta[string(k)] = bytes.Clone(v)
					return nil
				})
			}
			lb, nb := b.Bucket(boltLeavesBucket), b.Bucket(boltNodesBucket)
			if lb == nil {
				if sl.Size == 0 {
					return nil
				}
				return errors.New("no leaves bucket")
			}
			c := lb.Cursor()
			intact := true
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if len(k) != 8 || binary.BigEndian.Uint64(k) != sl.Read {
					return fmt.Errorf("leaf %d missing (next key %x)", sl.Read, k)
				}
				if intact {
					var stored []byte
					if nb != nil {
						stored = nb.Get(boltNodeKey(compact.NewNodeID(0, sl.Read)))
					}
					if !bytes.Equal(stored, hasher.HashLeaf(v)) {
						intact = false
						sl.Err = fmt.Errorf("leaf %d does not match its stored hash", sl.Read)
					}
				}
				if cbErr = leaf(SalvagedLeaf{Log: name, Index: sl.Read, Data: v, Intact: intact}); cbErr != nil {
					return cbErr
				}
				sl.Read++
				if intact {
					sl.Intact++
				}
			}
			if sl.Read < sl.Size && sl.Err == nil {
				return fmt.Errorf("only %d of %d leaves stored", sl.Read, sl.Size)
			}
			return sl.Err
		})
		if cbErr != nil {
			return logs, cbErr
		}
		logs = append(logs, sl)
	}
	return logs, nil
}

// salvageable fails for a file bbolt cannot open read-only: missing, or
// without a valid meta page (an empty file among them).
func salvageable(path string) error {
	if _, err := os.Stat(path); err != nil {
		return err
	}
	if h, _ := storecheck.Inspect(path); h.Exists && h.PageSize == 0 {
		return errors.New("no valid meta page, nothing to read")
	}
	return nil
}

// salvageView runs fn in a read transaction, turning a panic or memory
// fault (SetPanicOnFault is on in SalvageBoltStore's goroutine) into an
// error.
func salvageView(db *bolt.DB, fn func(*bolt.Tx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unreadable: %v", r)
		}
	}()
	return db.View(fn)
}

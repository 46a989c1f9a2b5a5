package anchor

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Limits checked before anything is hashed or stored.
const (
	// MaxLeafSize bounds one leaf's data. An envelope is far smaller; the
	// bound keeps one bbolt transaction, and one proof-serving read, small.
	MaxLeafSize = 1 << 20
	// MaxBatchLeaves bounds the leaves of one Append, so one transaction
	// (held in memory until it commits) stays bounded.
	MaxBatchLeaves = 1 << 16
	// maxGroupLeaves bounds how many AppendOne callers share one commit;
	// more callers wait for the next.
	maxGroupLeaves = 4096
)

// hasher is RFC 6962 / RFC 9162 SHA-256 hashing: leaf = SHA-256(0x00 ||
// data), node = SHA-256(0x01 || left || right).
var hasher = rfc6962.DefaultHasher

// rangeFactory builds compact ranges with the RFC 6962 node hash.
var rangeFactory = &compact.RangeFactory{Hash: hasher.HashChildren}

// Log is one append-only Merkle log (one per logged topic) kept in a Store.
// Its state is the size and the compact range of [0, size): the hashes of the
// perfect subtrees covering all leaves, from which the root follows. Every
// Append stores, with the leaves, the hash of every subtree it completes, so
// any inclusion or consistency proof for any size up to the current one is
// read from stored nodes, never recomputed from leaves.
//
// Invariant checked by OpenLog (cost O(log size) reads): the size record is
// backed by leaf size-1 and no leaf size exists; every node of the compact
// range is stored, equals the hash of its two stored children (or, at level
// 0, the leaf hash of the stored leaf data), and the last leaf's stored hash
// matches its data. Because a Store commits leaves, nodes and size in one
// transaction this holds after any crash; the check catches a damaged or
// foreign file. Verify recomputes the whole tree from the leaves (O(size)).
//
// All methods are safe for concurrent use.
type Log struct {
	store Store  // set at creation, never modified
	name  string // set at creation, never modified

	writeMu sync.Mutex // serialises appends; held across a Store.Commit

	mu     sync.RWMutex // guards the fields below
	size   uint64
	rng    *compact.Range // covers [0, size); replaced, never mutated, after commit
	root   [32]byte
	closed bool

	groupMu sync.Mutex // guards the AppendOne queue below
	queue   []*groupReq
	leading bool // an AppendOne caller is committing for the queue
}

// OpenLog loads the named log from store (an unknown name is an empty log)
// and checks the invariant described on Log. A Log must be the only writer of
// its name in the store.
func OpenLog(store Store, name string) (*Log, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	size, err := store.Size(name)
	if err != nil {
		return nil, fmt.Errorf("anchor: open log %q: %w", name, err)
	}
	l := &Log{store: store, name: name, size: size}
	if err := l.checkTail(size); err != nil {
		return nil, err
	}
	ids := compact.RangeNodes(0, size, nil)
	hashes, err := l.nodes(ids)
	if err != nil {
		return nil, err
	}
	for i, id := range ids {
		if err := l.checkNode(id, hashes[i]); err != nil {
			return nil, err
		}
	}
	l.rng, err = rangeFactory.NewRange(0, size, hashes)
	if err != nil {
		return nil, fmt.Errorf("%w: log %q: %v", ErrCorrupt, name, err)
	}
	if l.root, err = rootOf(l.rng); err != nil {
		return nil, err
	}
	return l, nil
}

// checkTail checks that leaves end exactly at size and that the last leaf's
// stored hash matches its data.
func (l *Log) checkTail(size uint64) error {
	if size == 0 {
		return nil
	}
	if _, err := l.store.Leaves(l.name, size, 1); err == nil {
		return fmt.Errorf("%w: log %q: leaf %d stored past size %d", ErrCorrupt, l.name, size, size)
	}
	return l.checkNode(compact.NewNodeID(0, size-1), nil)
}

// checkNode checks a stored node against its children (or leaf data). hash
// is the node's stored hash, nil to read it.
func (l *Log) checkNode(id compact.NodeID, hash []byte) error {
	if hash == nil {
		h, err := l.nodes([]compact.NodeID{id})
		if err != nil {
			return err
		}
		hash = h[0]
	}
	var want []byte
	if id.Level == 0 {
		data, err := l.store.Leaves(l.name, id.Index, 1)
		if err != nil {
			return fmt.Errorf("%w: log %q: %v", ErrCorrupt, l.name, err)
		}
		want = hasher.HashLeaf(data[0])
	} else {
		left := compact.NewNodeID(id.Level-1, id.Index*2)
		kids, err := l.nodes([]compact.NodeID{left, left.Sibling()})
		if err != nil {
			return err
		}
		want = hasher.HashChildren(kids[0], kids[1])
	}
	if !bytes.Equal(hash, want) && id.Level == 0 {
		return fmt.Errorf("%w: log %q: leaf %d: its data does not hash to its stored leaf hash", ErrCorrupt, l.name, id.Index)
	}
	if !bytes.Equal(hash, want) {
		return fmt.Errorf("%w: log %q: node (%d, %d) does not match its children", ErrCorrupt, l.name, id.Level, id.Index)
	}
	return nil
}

// nodes reads stored node hashes; a missing or malformed one is corruption,
// since callers only ask for nodes below the committed size.
func (l *Log) nodes(ids []compact.NodeID) ([][]byte, error) {
	hashes, err := l.store.Nodes(l.name, ids)
	if err != nil {
		if errorsIsNotFound(err) {
			return nil, fmt.Errorf("%w: log %q: %v", ErrCorrupt, l.name, err)
		}
		return nil, fmt.Errorf("anchor: log %q: %w", l.name, err)
	}
	for i, h := range hashes {
		if len(h) != hasher.Size() {
			return nil, fmt.Errorf("%w: log %q: node (%d, %d) has %d bytes", ErrCorrupt, l.name, ids[i].Level, ids[i].Index, len(h))
		}
	}
	return hashes, nil
}

func rootOf(r *compact.Range) ([32]byte, error) {
	var root [32]byte
	if r.End() == 0 {
		copy(root[:], hasher.EmptyRoot())
		return root, nil
	}
	h, err := r.GetRootHash(nil)
	if err != nil {
		return root, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	copy(root[:], h)
	return root, nil
}

// Name returns the log's name in its store.
func (l *Log) Name() string { return l.name }

// Size returns the number of durable leaves.
func (l *Log) Size() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.size
}

// Root returns the RFC 6962 root hash of the current size (the hash of the
// empty string for an empty log).
func (l *Log) Root() ([32]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return [32]byte{}, ErrClosed
	}
	return l.root, nil
}

// RangeHashes returns the hashes of the compact range covering the first
// size leaves (at most 64, left to right): with them a follower appends
// later leaves and recomputes roots without holding the earlier ones
// (transparency-dev/merkle/compact.Range).
func (l *Log) RangeHashes(size uint64) ([][]byte, error) {
	if err := l.checkSize(size); err != nil {
		return nil, err
	}
	return l.nodes(compact.RangeNodes(0, size, nil))
}

// RootAt returns the root hash of the tree of the first size leaves, read
// from the stored nodes of its compact range (O(log size) reads).
func (l *Log) RootAt(size uint64) ([32]byte, error) {
	if err := l.checkSize(size); err != nil {
		return [32]byte{}, err
	}
	hashes, err := l.nodes(compact.RangeNodes(0, size, nil))
	if err != nil {
		return [32]byte{}, err
	}
	r, err := rangeFactory.NewRange(0, size, hashes)
	if err != nil {
		return [32]byte{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return rootOf(r)
}

// checkSize fails unless the log is open and size <= its size.
func (l *Log) checkSize(size uint64) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	if size > l.size {
		return fmt.Errorf("%w: size %d beyond log size %d", ErrOutOfRange, size, l.size)
	}
	return nil
}

// Leaf returns a copy of the data of leaf index.
func (l *Log) Leaf(index uint64) ([]byte, error) {
	l.mu.RLock()
	size, closed := l.size, l.closed
	l.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if index >= size {
		return nil, fmt.Errorf("%w: leaf %d of a log of size %d", ErrOutOfRange, index, size)
	}
	data, err := l.store.Leaves(l.name, index, 1)
	if err != nil {
		if errorsIsNotFound(err) {
			return nil, fmt.Errorf("%w: log %q: %v", ErrCorrupt, l.name, err)
		}
		return nil, err
	}
	return data[0], nil
}

// InclusionProof returns the RFC 9162 inclusion proof of leaf index in the
// tree of the given size (index < size <= Size()), as accepted by
// proof.VerifyInclusion.
func (l *Log) InclusionProof(index, size uint64) ([][]byte, error) {
	if err := l.checkSize(size); err != nil {
		return nil, err
	}
	if index >= size {
		return nil, fmt.Errorf("%w: leaf %d in a tree of size %d", ErrOutOfRange, index, size)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOutOfRange, err)
	}
	return l.rehash(nodes)
}

// ConsistencyProof returns the RFC 9162 consistency proof between the trees
// of size1 and size2 (size1 <= size2 <= Size()), as accepted by
// proof.VerifyConsistency. It is empty when size1 is 0 or equals size2.
func (l *Log) ConsistencyProof(size1, size2 uint64) ([][]byte, error) {
	if err := l.checkSize(size2); err != nil {
		return nil, err
	}
	if size1 > size2 {
		return nil, fmt.Errorf("%w: consistency from size %d to smaller size %d", ErrOutOfRange, size1, size2)
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOutOfRange, err)
	}
	return l.rehash(nodes)
}

// rehash reads a proof's nodes (all complete subtrees, hence stored) and
// folds the ephemeral ones.
func (l *Log) rehash(nodes proof.Nodes) ([][]byte, error) {
	hashes, err := l.nodes(nodes.IDs)
	if err != nil {
		return nil, err
	}
	out, err := nodes.Rehash(hashes, hasher.HashChildren)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return out, nil
}

// Append appends a batch of leaves (their data; the tree hashes
// SHA-256(0x00 || data)) and returns the index of the first. It returns only
// once the whole batch is durable in the store, in one commit; on error
// nothing of the batch was appended. The caller may reuse the leaves' buffers
// once it returns.
func (l *Log) Append(leaves [][]byte) (first uint64, err error) {
	if len(leaves) == 0 || len(leaves) > MaxBatchLeaves {
		return 0, fmt.Errorf("%w: %d leaves, want 1..%d", ErrInvalidBatch, len(leaves), MaxBatchLeaves)
	}
	for i, d := range leaves {
		if len(d) > MaxLeafSize {
			return 0, fmt.Errorf("%w: leaf %d of the batch has %d bytes, max %d", ErrLeafTooLarge, i, len(d), MaxLeafSize)
		}
	}

	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	l.mu.RLock()
	size, cur, closed := l.size, l.rng, l.closed
	l.mu.RUnlock()
	if closed {
		return 0, ErrClosed
	}

	// Extend a copy, so a failed commit leaves the state untouched.
	next, err := rangeFactory.NewRange(0, size, append([][]byte(nil), cur.Hashes()...))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	batch := Batch{OldSize: size, Leaves: leaves, Nodes: make([]Node, 0, 2*len(leaves)+64)}
	visit := func(id compact.NodeID, hash []byte) {
		batch.Nodes = append(batch.Nodes, Node{ID: id, Hash: hash})
	}
	for _, d := range leaves {
		if err := next.Append(hasher.HashLeaf(d), visit); err != nil {
			return 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
	}
	root, err := rootOf(next)
	if err != nil {
		return 0, err
	}
	if err := l.store.Commit(l.name, batch); err != nil {
		return 0, fmt.Errorf("anchor: append to log %q: %w", l.name, err)
	}

	l.mu.Lock()
	l.size, l.rng, l.root = next.End(), next, root
	l.mu.Unlock()
	return size, nil
}

// Close stops the log: later calls fail with ErrClosed. It waits for an
// append under way; AppendOne callers still queued get ErrClosed. Close does
// not close the Store, which may hold other logs.
func (l *Log) Close() error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return nil
}

func errorsIsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// groupReq is one AppendOne caller waiting for a group commit.
type groupReq struct {
	data []byte
	done chan groupResult // buffered (1): the sender never blocks
}

// groupResult answers a groupReq: its index or error, or lead=true to make
// the waiting caller commit the queue itself.
type groupResult struct {
	index uint64
	err   error
	lead  bool
}

// AppendOne appends one leaf and returns its index once it is durable.
// Concurrent callers share commits (group commit): the first caller becomes
// the leader and commits everything queued in one Append, while the others
// wait; when it is done it hands leadership to the oldest caller queued
// meanwhile. No goroutine is started, so there is nothing to stop: after
// Close, callers get ErrClosed.
func (l *Log) AppendOne(data []byte) (uint64, error) {
	if len(data) > MaxLeafSize {
		return 0, fmt.Errorf("%w: %d bytes, max %d", ErrLeafTooLarge, len(data), MaxLeafSize)
	}
	req := &groupReq{data: data, done: make(chan groupResult, 1)}
	l.groupMu.Lock()
	l.queue = append(l.queue, req)
	if l.leading {
		l.groupMu.Unlock()
		res := <-req.done
		if !res.lead {
			return res.index, res.err
		}
	} else {
		l.leading = true
		l.groupMu.Unlock()
	}

	// Leader: commit up to maxGroupLeaves queued requests (its own among
	// them, since it queued before taking the lead).
	l.groupMu.Lock()
	n := min(len(l.queue), maxGroupLeaves)
	group := l.queue[:n:n]
	l.queue = l.queue[n:]
	l.groupMu.Unlock()

	leaves := make([][]byte, len(group))
	for i, r := range group {
		leaves[i] = r.data
	}
	first, err := l.Append(leaves)

	l.groupMu.Lock()
	if len(l.queue) > 0 {
		l.queue[0].done <- groupResult{lead: true}
	} else {
		l.leading = false
		l.queue = nil
	}
	l.groupMu.Unlock()

	var own groupResult
	for i, r := range group {
		res := groupResult{index: first + uint64(i), err: err}
		if err != nil {
			res.index = 0
		}
		if r == req {
			own = res
			continue
		}
		r.done <- res
	}
	return own.index, own.err
}

// verifyChunk is how many leaves Verify reads per Store call.
const verifyChunk = 4096

// Verify recomputes the whole tree from the stored leaf data and checks every
// stored node hash and the current root against it: O(Size()) reads and
// hashes, for audits, tests and BoltStore.CheckLogs; OpenLog checks only
// O(log size) records. A leaf whose data does not hash to its stored leaf
// hash (a flipped byte on disk) gives an error wrapping ErrCorrupt that names
// the first such leaf's index. It checks the size as of the call; appends
// may continue meanwhile.
func (l *Log) Verify() error {
	l.mu.RLock()
	size, want, closed := l.size, l.root, l.closed
	l.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	r := rangeFactory.NewEmptyRange(0)
	var visited []Node
	visit := func(id compact.NodeID, hash []byte) {
		visited = append(visited, Node{ID: id, Hash: hash})
	}
	for start := uint64(0); start < size; start += verifyChunk {
		n := int(min(verifyChunk, size-start))
		leaves, err := l.store.Leaves(l.name, start, n)
		if err != nil {
			return fmt.Errorf("%w: log %q: %v", ErrCorrupt, l.name, err)
		}
		visited = visited[:0]
		for _, d := range leaves {
			if err := r.Append(hasher.HashLeaf(d), visit); err != nil {
				return fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
		}
		ids := make([]compact.NodeID, len(visited))
		for i, v := range visited {
			ids[i] = v.ID
		}
		stored, err := l.nodes(ids)
		if err != nil {
			return err
		}
		// Visit order is each leaf's hash, then the subtrees it completes,
		// so the first mismatch is under the first bad leaf.
		for i, v := range visited {
			if bytes.Equal(stored[i], v.Hash) {
				continue
			}
			if v.ID.Level == 0 {
				return fmt.Errorf("%w: log %q: leaf %d: its data does not hash to its stored leaf hash", ErrCorrupt, l.name, v.ID.Index)
			}
			return fmt.Errorf("%w: log %q: stored node (%d, %d) differs from the hash of leaves [%d, %d)",
				ErrCorrupt, l.name, v.ID.Level, v.ID.Index, v.ID.Index<<v.ID.Level, (v.ID.Index+1)<<v.ID.Level)
		}
	}
	got, err := rootOf(r)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%w: log %q: root of %d leaves is %x, state says %x", ErrCorrupt, l.name, size, got, want)
	}
	return nil
}

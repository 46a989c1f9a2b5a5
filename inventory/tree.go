package inventory

import (
	"crypto/sha256"
	"fmt"
	"hash"
)

// The chunk tree is RFC 9162's Merkle tree (§2.1.1) with the object's
// chunks as leaves: a leaf hash is SHA-256(0x00 ‖ chunk), an interior
// node SHA-256(0x01 ‖ left ‖ right), and a tree of n > 1 leaves splits at
// the largest power of two below n. transparency-dev/merkle's rfc6962
// hasher computes the same (tree_test.go checks).

// LeafHasher hashes chunks into leaf hashes, reusing one SHA-256 state.
// Not safe for concurrent use.
type LeafHasher struct{ h hash.Hash }

// NewLeafHasher returns a LeafHasher.
func NewLeafHasher() *LeafHasher { return &LeafHasher{h: sha256.New()} }

// Sum returns the leaf hash of chunk.
func (l *LeafHasher) Sum(chunk []byte) [32]byte {
	l.h.Reset()
	l.h.Write([]byte{0})
	l.h.Write(chunk)
	var out [32]byte
	l.h.Sum(out[:0])
	return out
}

// LeafHash returns the leaf hash of chunk.
func LeafHash(chunk []byte) [32]byte { return NewLeafHasher().Sum(chunk) }

func nodeHash(l, r [32]byte) [32]byte {
	var b [65]byte
	b[0] = 1
	copy(b[1:], l[:])
	copy(b[33:], r[:])
	return sha256.Sum256(b[:])
}

// TreeRoot returns the RFC 9162 tree head of leaves, at least one.
func TreeRoot(leaves [][32]byte) [32]byte {
	switch len(leaves) {
	case 0:
		panic("inventory: TreeRoot of no leaves")
	case 1:
		return leaves[0]
	}
	k := 1
	for k<<1 < len(leaves) {
		k <<= 1
	}
	return nodeHash(TreeRoot(leaves[:k]), TreeRoot(leaves[k:]))
}

// CheckLeaves verifies that leaves are m's: as many as its chunks, with
// its root. A peer that serves others is banned (ErrBadChunk).
func CheckLeaves(m *Manifest, leaves [][32]byte) error {
	if len(leaves) != m.Chunks() {
		return fmt.Errorf("%w: %d leaves for %d chunks", ErrBadChunk, len(leaves), m.Chunks())
	}
	if TreeRoot(leaves) != m.Root {
		return fmt.Errorf("%w: leaves do not hash to the manifest's root", ErrBadChunk)
	}
	return nil
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

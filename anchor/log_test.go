package anchor

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// refRoot is the RFC 9162 §2.1.1 definition of the tree hash, written out
// independently of the compact ranges the package uses.
func refRoot(leaves [][]byte) []byte {
	switch len(leaves) {
	case 0:
		h := sha256.Sum256(nil)
		return h[:]
	case 1:
		h := sha256.Sum256(append([]byte{0}, leaves[0]...))
		return h[:]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	h := sha256.Sum256(append(append([]byte{1}, refRoot(leaves[:k])...), refRoot(leaves[k:])...))
	return h[:]
}

func leafData(i int) []byte { return fmt.Appendf(nil, "leaf-%d", i) }

func newBoltStore(t testing.TB) *BoltStore {
	t.Helper()
	s, err := OpenBoltStore(filepath.Join(t.TempDir(), "anchor.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// stores are the Store implementations every log test runs against.
var stores = []struct {
	name string
	new  func(testing.TB) Store
}{
	{"memory", func(testing.TB) Store { return NewMemoryStore() }},
	{"bolt", func(t testing.TB) Store { return newBoltStore(t) }},
}

func openLog(t testing.TB, s Store, name string) *Log {
	t.Helper()
	l, err := OpenLog(s, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestRootMatchesReference(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			l := openLog(t, st.new(t), "topic")
			var leaves [][]byte
			// Batches of growing size cross every power-of-two boundary.
			for batch := 1; len(leaves) < 100; batch++ {
				var b [][]byte
				for range batch {
					b = append(b, leafData(len(leaves)+len(b)))
				}
				first, err := l.Append(b)
				if err != nil {
					t.Fatal(err)
				}
				if first != uint64(len(leaves)) {
					t.Fatalf("first = %d, want %d", first, len(leaves))
				}
				leaves = append(leaves, b...)
				root, err := l.Root()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(root[:], refRoot(leaves)) {
					t.Fatalf("size %d: root %x, want %x", len(leaves), root, refRoot(leaves))
				}
			}
			for size := 0; size <= len(leaves); size++ {
				root, err := l.RootAt(uint64(size))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(root[:], refRoot(leaves[:size])) {
					t.Fatalf("RootAt(%d) = %x, want %x", size, root, refRoot(leaves[:size]))
				}
			}
			for i, want := range leaves {
				got, err := l.Leaf(uint64(i))
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("Leaf(%d) = %q, %v; want %q", i, got, err, want)
				}
			}
			if err := l.Verify(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestEmptyLog(t *testing.T) {
	l := openLog(t, NewMemoryStore(), "empty")
	root, err := l.Root()
	if err != nil {
		t.Fatal(err)
	}
	if want := rfc6962.DefaultHasher.EmptyRoot(); l.Size() != 0 || !bytes.Equal(root[:], want) {
		t.Fatalf("size %d root %x, want 0 and %x", l.Size(), root, want)
	}
	if p, err := l.ConsistencyProof(0, 0); err != nil || len(p) != 0 {
		t.Fatalf("ConsistencyProof(0, 0) = %x, %v", p, err)
	}
}

func TestProofsVerify(t *testing.T) {
	const n = 37
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			l := openLog(t, st.new(t), "topic")
			var leaves [][]byte
			for i := range n {
				leaves = append(leaves, leafData(i))
				if _, err := l.Append([][]byte{leafData(i)}); err != nil {
					t.Fatal(err)
				}
			}
			h := rfc6962.DefaultHasher
			for size := uint64(1); size <= n; size++ {
				root := refRoot(leaves[:size])
				for index := range size {
					p, err := l.InclusionProof(index, size)
					if err != nil {
						t.Fatal(err)
					}
					if err := proof.VerifyInclusion(h, index, size, h.HashLeaf(leaves[index]), p, root); err != nil {
						t.Fatalf("inclusion %d in %d: %v", index, size, err)
					}
				}
				for size1 := uint64(0); size1 <= size; size1++ {
					p, err := l.ConsistencyProof(size1, size)
					if err != nil {
						t.Fatal(err)
					}
					if err := proof.VerifyConsistency(h, size1, size, p, refRoot(leaves[:size1]), root); err != nil {
						t.Fatalf("consistency %d to %d: %v", size1, size, err)
					}
				}
			}
			// A proof for another leaf's data must not verify.
			p, err := l.InclusionProof(3, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(h, 3, n, h.HashLeaf(leaves[4]), p, refRoot(leaves)); err == nil {
				t.Fatal("inclusion proof verified for the wrong leaf")
			}
		})
	}
}

func TestAppendRejects(t *testing.T) {
	tooMany := make([][]byte, MaxBatchLeaves+1)
	tests := []struct {
		name   string
		leaves [][]byte
		want   error
	}{
		{"empty batch", nil, ErrInvalidBatch},
		{"too many leaves", tooMany, ErrInvalidBatch},
		{"leaf too large", [][]byte{{1}, make([]byte, MaxLeafSize+1)}, ErrLeafTooLarge},
		{"largest leaf", [][]byte{make([]byte, MaxLeafSize)}, nil},
		{"empty leaf", [][]byte{{}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := openLog(t, NewMemoryStore(), "topic")
			_, err := l.Append(tt.leaves)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Append: %v, want %v", err, tt.want)
			}
			if wantSize := uint64(len(tt.leaves)); tt.want != nil && l.Size() != 0 || tt.want == nil && l.Size() != wantSize {
				t.Fatalf("size %d after Append error %v", l.Size(), err)
			}
		})
	}
	t.Run("AppendOne leaf too large", func(t *testing.T) {
		l := openLog(t, NewMemoryStore(), "topic")
		if _, err := l.AppendOne(make([]byte, MaxLeafSize+1)); !errors.Is(err, ErrLeafTooLarge) {
			t.Fatalf("AppendOne: %v, want ErrLeafTooLarge", err)
		}
	})
}

func TestOutOfRange(t *testing.T) {
	l := openLog(t, NewMemoryStore(), "topic")
	if _, err := l.Append([][]byte{{1}, {2}, {3}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"Leaf at size", func() error { _, err := l.Leaf(3); return err }},
		{"Leaf max index", func() error { _, err := l.Leaf(math.MaxUint64); return err }},
		{"RootAt past size", func() error { _, err := l.RootAt(4); return err }},
		{"inclusion index at size", func() error { _, err := l.InclusionProof(3, 3); return err }},
		{"inclusion size past log", func() error { _, err := l.InclusionProof(0, 4); return err }},
		{"inclusion in empty tree", func() error { _, err := l.InclusionProof(0, 0); return err }},
		{"consistency sizes reversed", func() error { _, err := l.ConsistencyProof(3, 2); return err }},
		{"consistency size2 past log", func() error { _, err := l.ConsistencyProof(1, 4); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, ErrOutOfRange) {
				t.Fatalf("got %v, want ErrOutOfRange", err)
			}
		})
	}
}

func TestClosedLog(t *testing.T) {
	l := openLog(t, NewMemoryStore(), "topic")
	if _, err := l.Append([][]byte{{1}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"Append", func() error { _, err := l.Append([][]byte{{2}}); return err }},
		{"AppendOne", func() error { _, err := l.AppendOne([]byte{2}); return err }},
		{"Root", func() error { _, err := l.Root(); return err }},
		{"Leaf", func() error { _, err := l.Leaf(0); return err }},
		{"InclusionProof", func() error { _, err := l.InclusionProof(0, 1); return err }},
		{"ConsistencyProof", func() error { _, err := l.ConsistencyProof(0, 1); return err }},
		{"Verify", l.Verify},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, ErrClosed) {
				t.Fatalf("got %v, want ErrClosed", err)
			}
		})
	}
}

func TestAppendOneConcurrent(t *testing.T) {
	const callers, each = 64, 20
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			l := openLog(t, st.new(t), "topic")
			var wg sync.WaitGroup
			indices := make([][]uint64, callers)
			errs := make(chan error, callers)
			for c := range callers {
				wg.Go(func() {
					for i := range each {
						idx, err := l.AppendOne(fmt.Appendf(nil, "c%d-%d", c, i))
						if err != nil {
							errs <- err
							return
						}
						indices[c] = append(indices[c], idx)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if l.Size() != callers*each {
				t.Fatalf("size %d, want %d", l.Size(), callers*each)
			}
			seen := make(map[uint64]bool)
			for c, idxs := range indices {
				for i, idx := range idxs {
					if seen[idx] {
						t.Fatalf("index %d returned twice", idx)
					}
					seen[idx] = true
					got, err := l.Leaf(idx)
					if want := fmt.Appendf(nil, "c%d-%d", c, i); err != nil || !bytes.Equal(got, want) {
						t.Fatalf("Leaf(%d) = %q, %v; want %q", idx, got, err, want)
					}
				}
			}
			if err := l.Verify(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestReopenKeepsState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "anchor.db")
	s, err := OpenBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	a, b := openLog(t, s, "a"), openLog(t, s, "b")
	for i := range 50 {
		if _, err := a.Append([][]byte{leafData(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Append([][]byte{{'b'}}); err != nil {
		t.Fatal(err)
	}
	rootA, _ := a.Root()
	a.Close()
	b.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = OpenBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a = openLog(t, s, "a")
	got, err := a.Root()
	if err != nil || got != rootA || a.Size() != 50 {
		t.Fatalf("reopened: size %d root %x (%v), want 50 and %x", a.Size(), got, err, rootA)
	}
	if first, err := a.Append([][]byte{leafData(50)}); err != nil || first != 50 {
		t.Fatalf("Append after reopen = %d, %v; want 50", first, err)
	}
	if b := openLog(t, s, "b"); b.Size() != 1 {
		t.Fatalf("log b size %d, want 1", b.Size())
	}
}

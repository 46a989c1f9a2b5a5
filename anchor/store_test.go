package anchor

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	bolt "go.etcd.io/bbolt"
)

// TestOpenLogDetectsCorruption damages a stored log of 11 leaves (compact
// range: nodes (3,0), (1,4), (0,10)) in ways a crash cannot, and checks that
// OpenLog refuses it.
func TestOpenLogDetectsCorruption(t *testing.T) {
	tests := []struct {
		name   string
		damage func(lg *memoryLog)
		want   error
	}{
		{"intact", func(*memoryLog) {}, nil},
		{"compact range node flipped", func(lg *memoryLog) { lg.nodes[compact.NewNodeID(1, 4)][0] ^= 1 }, ErrCorrupt},
		{"compact range child flipped", func(lg *memoryLog) { lg.nodes[compact.NewNodeID(2, 1)][0] ^= 1 }, ErrCorrupt},
		{"last leaf data changed", func(lg *memoryLog) { lg.leaves[10] = []byte("forged") }, ErrCorrupt},
		{"last leaf hash flipped", func(lg *memoryLog) { lg.nodes[compact.NewNodeID(0, 10)][5] ^= 1 }, ErrCorrupt},
		{"compact range node missing", func(lg *memoryLog) { delete(lg.nodes, compact.NewNodeID(3, 0)) }, ErrCorrupt},
		{"node hash truncated", func(lg *memoryLog) { lg.nodes[compact.NewNodeID(3, 0)] = []byte{1} }, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewMemoryStore()
			l := openLog(t, s, "topic")
			for i := range 11 {
				if _, err := l.Append([][]byte{leafData(i)}); err != nil {
					t.Fatal(err)
				}
			}
			tt.damage(s.logs["topic"])
			_, err := OpenLog(s, "topic")
			if !errors.Is(err, tt.want) {
				t.Fatalf("OpenLog: %v, want %v", err, tt.want)
			}
		})
	}
}

// TestVerifyDetectsInnerDamage: a flipped node outside the compact range
// passes OpenLog's O(log n) check but not Verify, nor the proofs using it.
func TestVerifyDetectsInnerDamage(t *testing.T) {
	s := NewMemoryStore()
	l := openLog(t, s, "topic")
	for i := range 11 {
		if _, err := l.Append([][]byte{leafData(i)}); err != nil {
			t.Fatal(err)
		}
	}
	s.logs["topic"].nodes[compact.NewNodeID(0, 2)][0] ^= 1
	l2, err := OpenLog(s, "topic")
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.Verify(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify: %v, want ErrCorrupt", err)
	}
}

func TestLeafPastSizeIsCorrupt(t *testing.T) {
	s := newBoltStore(t)
	l := openLog(t, s, "topic")
	if _, err := l.Append([][]byte{{1}, {2}}); err != nil {
		t.Fatal(err)
	}
	// Write a leaf past the size record directly, as a torn writer would.
	err := s.db.Update(func(tx *bolt.Tx) error {
		lb := tx.Bucket(boltRootBucket).Bucket([]byte("topic")).Bucket(boltLeavesBucket)
		return lb.Put(boltIndexKey(2), []byte{3})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLog(s, "topic"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("OpenLog: %v, want ErrCorrupt", err)
	}
}

func TestBoltStoreFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "anchor.db")
	s, err := OpenBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Fatalf("mode %o, want 600", mode)
	}
	// A second open of the same file waits for the lock (1 s), then fails.
	if _, err := OpenBoltStore(path); !errors.Is(err, ErrStoreLocked) {
		t.Fatalf("second open: %v, want ErrStoreLocked", err)
	}
	if _, err := OpenBoltStore(filepath.Join(path, "not-a-dir", "x.db")); err == nil || errors.Is(err, ErrStoreLocked) {
		t.Fatalf("open under a file: %v, want a plain error", err)
	}
}

func TestStoreErrors(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			s := st.new(t)
			tests := []struct {
				name string
				call func() error
				want error
			}{
				{"empty name", func() error { _, err := OpenLog(s, ""); return err }, ErrInvalidName},
				{"long name", func() error { _, err := OpenLog(s, strings.Repeat("x", MaxNameLen+1)); return err }, ErrInvalidName},
				{"commit past size", func() error { return s.Commit("x", Batch{OldSize: 5, Leaves: [][]byte{{1}}}) }, ErrConflict},
				{"missing leaf", func() error { _, err := s.Leaves("x", 0, 1); return err }, ErrNotFound},
				{"missing node", func() error { _, err := s.Nodes("x", []compact.NodeID{compact.NewNodeID(0, 0)}); return err }, ErrNotFound},
				{"unknown log is empty", func() error {
					if n, err := s.Size("unknown"); err != nil || n != 0 {
						return errors.New("unknown log not empty")
					}
					return nil
				}, nil},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if err := tt.call(); !errors.Is(err, tt.want) {
						t.Fatalf("got %v, want %v", err, tt.want)
					}
				})
			}
		})
	}
}

// TestSecondWriterConflicts: two Logs on one name cannot both extend it; the
// loser stores nothing.
func TestSecondWriterConflicts(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			s := st.new(t)
			a, b := openLog(t, s, "topic"), openLog(t, s, "topic")
			if _, err := a.Append([][]byte{{1}}); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Append([][]byte{{2}}); !errors.Is(err, ErrConflict) {
				t.Fatalf("second writer: %v, want ErrConflict", err)
			}
			if n, _ := s.Size("topic"); n != 1 || b.Size() != 0 {
				t.Fatalf("store size %d, loser size %d; want 1 and 0", n, b.Size())
			}
		})
	}
}

func TestClosedStore(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			s := st.new(t)
			l := openLog(t, s, "topic")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Append([][]byte{{1}}); !errors.Is(err, ErrStoreClosed) {
				t.Fatalf("Append: %v, want ErrStoreClosed", err)
			}
			if _, err := OpenLog(s, "topic"); !errors.Is(err, ErrStoreClosed) {
				t.Fatalf("OpenLog: %v, want ErrStoreClosed", err)
			}
		})
	}
}

package anchor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitmesh/bitmesh/internal/storecheck/faulttest"
	"github.com/transparency-dev/merkle/compact"
)

// faultLogs are the logs of the store the fault test damages: several
// commits each, so the file has many pages and both meta pages are in use.
var faultLogs = map[string]int{"alpha": 400, "beta": 60}

// faultLeaf is leaf i of a log: a marker the test can find in the file,
// padded to about an envelope's size.
func faultLeaf(name string, i int) []byte {
	d := make([]byte, 180)
	copy(d, fmt.Sprintf("leaf-%s-%06d|", name, i))
	return d
}

// writeFaultStore writes faultLogs to a fresh BoltStore and closes it.
func writeFaultStore(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "anchor.db")
	s, err := OpenBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for name, n := range faultLogs {
		l, err := OpenLog(s, name)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i += 25 {
			var batch [][]byte
			for j := i; j < min(i+25, n); j++ {
				batch = append(batch, faultLeaf(name, j))
			}
			if _, err := l.Append(batch); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
	}
	return path
}

// openChecked opens the store as a node does: the file check in
// OpenBoltStore, then the logs' hashes.
func openChecked(path string) (*BoltStore, error) {
	s, err := OpenBoltStore(path)
	if err != nil {
		return nil, err
	}
	if err := s.CheckLogs(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// lost returns what of faultLogs the store no longer holds as written.
func lost(s *BoltStore) error {
	for name, n := range faultLogs {
		l, err := OpenLog(s, name)
		if err != nil {
			return err
		}
		defer l.Close()
		if l.Size() != uint64(n) {
			return fmt.Errorf("log %s has %d leaves, want %d", name, l.Size(), n)
		}
		for i := range n {
			d, err := l.Leaf(uint64(i))
			if err != nil || !bytes.Equal(d, faultLeaf(name, i)) {
				return fmt.Errorf("log %s leaf %d: %q, %v", name, i, d, err)
			}
		}
	}
	return nil
}

// TestBoltStoreFaults damages copies of a store and opens them in this
// process: each must be refused with an error that names the file and the
// repair command, or open with everything that was written. A SIGBUS or a
// bbolt panic here kills the test binary.
func TestBoltStoreFaults(t *testing.T) {
	pristine := writeFaultStore(t)
	rows := append(faulttest.Faults(1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
		faulttest.Fault{Name: "flip a byte inside a leaf", MustRefuse: true, Apply: func(t testing.TB, p string) {
			faulttest.FlipByteIn(t, p, []byte("leaf-alpha-000123|"))
		}},
		faulttest.Fault{Name: "flip a byte inside the last leaf", MustRefuse: true, Apply: func(t testing.TB, p string) {
			faulttest.FlipByteIn(t, p, []byte("leaf-beta-000059|"))
		}},
		faulttest.Fault{Name: "untouched", Apply: func(testing.TB, string) {}},
	)
	for _, f := range rows {
		t.Run(f.Name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "anchor.db")
			faulttest.Copy(t, pristine, path)
			f.Apply(t, path)
			s, err := openChecked(path)
			if err != nil {
				if f.Name == "untouched" {
					t.Fatalf("pristine store refused: %v", err)
				}
				faulttest.CheckRefusal(t, err, path, ErrStoreDamaged)
				t.Logf("refused: %v", err)
				if strings.HasPrefix(f.Name, "flip") && !strings.Contains(err.Error(), "leaf ") {
					t.Fatalf("error %q does not name the bad leaf", err)
				}
				return
			}
			defer s.Close()
			if f.MustRefuse {
				t.Fatal("opened, want ErrStoreDamaged")
			}
			if err := lost(s); err != nil {
				t.Fatalf("opened but lost data: %v", err)
			}
		})
	}
}

func TestVerifyNamesFirstBadLeaf(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(lg *memoryLog)
		want   string // in the error; empty for no error
	}{
		{"intact", func(*memoryLog) {}, ""},
		{"leaf 7 changed", func(lg *memoryLog) { lg.leaves[7][3] ^= 1 }, "leaf 7:"},
		{"leaves 3 and 9 changed", func(lg *memoryLog) { lg.leaves[3][0] ^= 1; lg.leaves[9][0] ^= 1 }, "leaf 3:"},
		{"inner node changed", func(lg *memoryLog) { lg.nodes[compact.NewNodeID(1, 2)][0] ^= 1 }, "node (1, 2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewMemoryStore()
			l := openLog(t, s, "topic")
			for i := range 16 {
				if _, err := l.Append([][]byte{leafData(i)}); err != nil {
					t.Fatal(err)
				}
			}
			tc.damage(s.logs["topic"])
			err := l.Verify()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify: %v, want ErrCorrupt naming %q", err, tc.want)
			}
		})
	}
}

func TestSalvageBoltStore(t *testing.T) {
	pristine := writeFaultStore(t)
	path := filepath.Join(t.TempDir(), "anchor.db")
	faulttest.Copy(t, pristine, path)
	faulttest.FlipByteIn(t, path, []byte("leaf-alpha-000123|"))
	intact := map[string]int{}
	logs, err := SalvageBoltStore(path, func(l SalvagedLeaf) error {
		if l.Intact {
			if !bytes.Equal(l.Data, faultLeaf(l.Log, int(l.Index))) {
				return fmt.Errorf("intact leaf %s/%d differs", l.Log, l.Index)
			}
			intact[l.Log]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) != 2 || intact["alpha"] != 123 || intact["beta"] != 60 {
		t.Fatalf("salvaged %+v, intact %v", logs, intact)
	}
	for _, l := range logs {
		if l.Read != uint64(faultLogs[l.Name]) || (l.Name == "alpha") != (l.Err != nil) {
			t.Fatalf("log %+v", l)
		}
	}
	if _, err := SalvageBoltStore(filepath.Join(t.TempDir(), "none.db"), func(SalvagedLeaf) error { return nil }); err == nil {
		t.Fatal("salvaged a missing file")
	}
}

// BenchmarkOpenCheck1M measures what damage checks cost on the shared
// 2^20-leaf log (100-byte leaves): OpenBoltStore (storecheck: header checks,
// one read of every page, bbolt's tx.Check), Log.Verify, and CheckLogs. Run
// with -bench only; building the log takes about a minute.
func BenchmarkOpenCheck1M(b *testing.B) {
	benchLog(b)
	path := filepath.Join(b.TempDir(), "anchor.db")
	faulttest.Copy(b, filepath.Join(bench.dir, "bench.db"), path)
	if st, err := os.Stat(path); err == nil {
		b.Logf("store file: %d MiB", st.Size()>>20)
	}
	b.Run("OpenBoltStore", func(b *testing.B) {
		for b.Loop() {
			s, err := OpenBoltStore(path)
			if err != nil {
				b.Fatal(err)
			}
			s.Close()
		}
	})
	s, err := OpenBoltStore(path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.Run("Verify", func(b *testing.B) {
		l, err := OpenLog(s, "bench")
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		for b.Loop() {
			if err := l.Verify(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CheckLogs", func(b *testing.B) {
		for b.Loop() {
			if err := s.CheckLogs(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/internal/storecheck/faulttest"
	"github.com/bitmesh/bitmesh/node"
)

const repairTopic = "sensors/temp"

// repairLeaf is leaf i of the test log: a marker the test can find in the
// file.
func repairLeaf(i int) []byte {
	return fmt.Appendf(nil, "envelope-%05d|%s", i, strings.Repeat("e", 150))
}

// writeDataDir writes a data directory with a 100-leaf log, a 10-leaf log
// and 20 bans (5 of them expired).
func writeDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	s, err := anchor.OpenBoltStore(filepath.Join(dir, anchorStoreFileName))
	if err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]int{repairTopic: 100, "other": 10} {
		l, err := anchor.OpenLog(s, name)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i += 10 {
			var batch [][]byte
			for j := i; j < i+10; j++ {
				batch = append(batch, repairLeaf(j))
			}
			if _, err := l.Append(batch); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	bs, err := antispam.OpenBoltStore(filepath.Join(dir, node.BanStoreFileName))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 20 {
		until := now.Add(time.Hour)
		if i < 5 {
			until = now.Add(-time.Hour)
		}
		b := antispam.Ban{Subject: antispam.Subject{Kind: antispam.SubjectDevice, ID: fmt.Sprintf("dev-%02d", i)},
			Since: now.Add(-2 * time.Hour), Until: until, Reason: fmt.Sprintf("ban-%02d|", i)}
		if err := bs.Put(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := bs.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// logLeaves returns the leaves of the named log in dir's anchor.db.
func logLeaves(t *testing.T, dir, name string) [][]byte {
	t.Helper()
	s, err := anchor.OpenBoltStore(filepath.Join(dir, anchorStoreFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := anchor.OpenLog(s, name)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Verify(); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for i := range l.Size() {
		d, err := l.Leaf(i)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func TestRepair(t *testing.T) {
	anchorPath := func(dir string) string { return filepath.Join(dir, anchorStoreFileName) }
	bansPath := func(dir string) string { return filepath.Join(dir, node.BanStoreFileName) }
	for _, tc := range []struct {
		name     string
		damage   func(t *testing.T, dir string)
		args     []string // after --data DIR
		code     int
		contains []string
		after    func(t *testing.T, dir string)
	}{
		{
			name:     "clean directory",
			damage:   func(*testing.T, string) {},
			code:     0,
			contains: []string{"anchor.db: ok (2 logs, 110 leaves", "bans.db: ok (20 bans)", "is clean"},
		},
		{
			name: "flipped leaf in anchor.db",
			damage: func(t *testing.T, dir string) {
				faulttest.FlipByteIn(t, anchorPath(dir), []byte("envelope-00040|"))
			},
			code: 1,
			contains: []string{
				"anchor.db: damaged: ", "leaf 40", "anchor.db: moved aside to anchor.db.damaged-",
				`log "sensors/temp": 40 of 100 leaves kept`, `log "other": 10 of 10 leaves kept`,
				"quarantined to quarantine/sensors%2Ftemp-40.bin", "... and 50 more",
			},
			after: func(t *testing.T, dir string) {
				got := logLeaves(t, dir, repairTopic)
				if len(got) != 40 {
					t.Fatalf("log has %d leaves, want the 40 before the damaged one", len(got))
				}
				for i, d := range got {
					if !bytes.Equal(d, repairLeaf(i)) {
						t.Fatalf("leaf %d differs", i)
					}
				}
				if n := len(logLeaves(t, dir, "other")); n != 10 {
					t.Fatalf("other log has %d leaves", n)
				}
				for i := 40; i < 100; i++ {
					d, err := os.ReadFile(filepath.Join(dir, quarantineDir, fmt.Sprintf("sensors%%2Ftemp-%d.bin", i)))
					if err != nil {
						t.Fatal(err)
					}
					if i > 40 && !bytes.Equal(d, repairLeaf(i)) {
						t.Fatalf("quarantined leaf %d differs", i)
					}
				}
				damaged, _ := filepath.Glob(anchorPath(dir) + ".damaged-*")
				if len(damaged) != 1 {
					t.Fatalf("damaged copies: %v", damaged)
				}
			},
		},
		{
			name: "dry run changes nothing",
			damage: func(t *testing.T, dir string) {
				faulttest.FlipByteIn(t, anchorPath(dir), []byte("envelope-00040|"))
			},
			args:     []string{"--dry-run"},
			code:     1,
			contains: []string{"anchor.db: damaged: ", `40 of 100 leaves would be kept`, "would be quarantined"},
			after: func(t *testing.T, dir string) {
				if _, err := os.Stat(filepath.Join(dir, quarantineDir)); !os.IsNotExist(err) {
					t.Fatalf("dry run wrote the quarantine: %v", err)
				}
				if m, _ := filepath.Glob(anchorPath(dir) + ".damaged-*"); len(m) != 0 {
					t.Fatalf("dry run moved files: %v", m)
				}
				if code, out, _ := runArgs("repair", "--data", dir); code != 1 || !strings.Contains(out, "40 of 100 leaves kept") {
					t.Fatalf("repair after the dry run: %d\n%s", code, out)
				}
			},
		},
		{
			name: "anchor.db cut short",
			damage: func(t *testing.T, dir string) {
				ps := int64(faulttest.PageSize(t, anchorPath(dir)))
				st, _ := os.Stat(anchorPath(dir))
				if err := os.Truncate(anchorPath(dir), st.Size()/2/ps*ps); err != nil {
					t.Fatal(err)
				}
			},
			code:     1,
			contains: []string{"anchor.db: damaged: ", "cut short", "anchor.db: rebuilt"},
		},
		{
			name: "bans.db emptied",
			damage: func(t *testing.T, dir string) {
				if err := os.Truncate(bansPath(dir), 0); err != nil {
					t.Fatal(err)
				}
			},
			code:     1,
			contains: []string{"bans.db: damaged: file is empty", "bans.db: nothing readable"},
		},
		{
			name: "bans.db first meta page zeroed",
			damage: func(t *testing.T, dir string) {
				faulttest.WriteAt(t, bansPath(dir), 0, make([]byte, faulttest.PageSize(t, bansPath(dir))))
			},
			code:     1,
			contains: []string{"bans.db: damaged: meta page 0 is invalid", "unexpired bans kept, ", "may be lost"},
		},
		{
			name: "ban record flipped",
			damage: func(t *testing.T, dir string) {
				faulttest.FlipByteIn(t, bansPath(dir), []byte("ban-12|"))
			},
			code:     1,
			contains: []string{"bans.db: damaged: ", "checksum", "14 unexpired bans kept, 5 expired dropped"},
		},
		{
			name:     "stray argument",
			damage:   func(*testing.T, string) {},
			args:     []string{"extra"},
			code:     2,
			contains: []string{"want 0 argument(s)"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeDataDir(t)
			tc.damage(t, dir)
			code, out, errOut := runArgs(append([]string{"repair", "--data", dir}, tc.args...)...)
			t.Logf("exit %d\n%s%s", code, out, errOut)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			for _, c := range tc.contains {
				if !strings.Contains(out+errOut, c) {
					t.Fatalf("output lacks %q\nstdout:\n%s\nstderr:\n%s", c, out, errOut)
				}
			}
			if tc.after != nil {
				tc.after(t, dir)
			}
			if tc.code == 2 {
				return
			}
			// Whatever the damage, a repaired directory is clean.
			if code, out, errOut := runArgs("repair", "--data", dir); code != 0 || !strings.Contains(out, "is clean") {
				t.Fatalf("second repair: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
		})
	}
}

func TestRepairRefusesWhileInUse(t *testing.T) {
	dir := writeDataDir(t)
	s, err := anchor.OpenBoltStore(filepath.Join(dir, anchorStoreFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	code, out, errOut := runArgs("repair", "--data", dir)
	if code != 1 || !strings.Contains(errOut, "stop the node first") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

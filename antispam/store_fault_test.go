package antispam

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/internal/storecheck/faulttest"
)

// faultBans are the bans of the store the fault test damages.
func faultBans() []Ban {
	var bans []Ban
	for i := range 150 {
		bans = append(bans, Ban{
			Subject: testDevice(i),
			Since:   t0,
			Until:   t0.Add(time.Duration(1+i) * time.Hour),
			Reason:  fmt.Sprintf("reason-%04d|%s", i, strings.Repeat("x", 40)),
		})
	}
	return bans
}

// writeFaultStore writes faultBans in several commits, some batched, some
// one Put each, and closes the store.
func writeFaultStore(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bans.db")
	st, err := OpenBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bans := faultBans()
	for i := 0; i < 120; i += 20 {
		if err := st.Apply(bans[i:i+20], nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range bans[120:] {
		if err := st.Put(b); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// TestBoltStoreFaults damages copies of a ban store and opens them in this
// process: each must be refused with an error that names the file and the
// repair command, or open and load every ban as written, or report, with
// the file's name, each ban it could not read. A SIGBUS or a bbolt panic
// here kills the test binary.
func TestBoltStoreFaults(t *testing.T) {
	pristine := writeFaultStore(t)
	want := make(map[Subject]Ban)
	for _, b := range faultBans() {
		want[b.Subject] = b
	}
	rows := append(faulttest.Faults(1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
		faulttest.Fault{Name: "flip a byte inside a ban", Apply: func(t testing.TB, p string) {
			faulttest.FlipByteIn(t, p, []byte("reason-0077|"))
		}},
		faulttest.Fault{Name: "untouched", Apply: func(testing.TB, string) {}},
	)
	for _, f := range rows {
		t.Run(f.Name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bans.db")
			faulttest.Copy(t, pristine, path)
			f.Apply(t, path)
			st, err := OpenBoltStore(path)
			if err != nil {
				if f.Name == "untouched" {
					t.Fatalf("pristine store refused: %v", err)
				}
				faulttest.CheckRefusal(t, err, path, ErrStoreDamaged)
				t.Logf("refused: %v", err)
				return
			}
			defer st.Close()
			if f.MustRefuse {
				t.Fatal("opened, want ErrStoreDamaged")
			}
			bans, err := st.Load()
			skipped := 0
			if err != nil {
				var re *RecordError
				if !errors.As(err, &re) || !strings.Contains(err.Error(), path) {
					t.Fatalf("Load: %v, want RecordErrors naming the file", err)
				}
				skipped = strings.Count(err.Error(), ErrCorruptBan.Error())
			}
			for _, b := range bans {
				w, ok := want[b.Subject]
				if !ok || !b.Since.Equal(w.Since) || !b.Until.Equal(w.Until) || b.Reason != w.Reason {
					t.Fatalf("loaded %+v, wrote %+v", b, w)
				}
			}
			if len(bans)+skipped != len(want) {
				t.Fatalf("loaded %d bans and reported %d bad records, wrote %d: some vanished silently", len(bans), skipped, len(want))
			}
			if f.Name == "flip a byte inside a ban" && skipped != 1 {
				t.Fatalf("flipped ban not reported: %d skipped", skipped)
			}
		})
	}
}

func TestSalvageBoltStore(t *testing.T) {
	pristine := writeFaultStore(t)
	for _, tc := range []struct {
		name    string
		damage  func(t testing.TB, path string)
		want    int  // bans salvaged
		wantErr bool // some damage reported
	}{
		{"untouched", func(testing.TB, string) {}, 150, false},
		{"one ban flipped", func(t testing.TB, p string) { faulttest.FlipByteIn(t, p, []byte("reason-0077|")) }, 149, true},
		{"both meta pages zeroed", func(t testing.TB, p string) {
			faulttest.WriteAt(t, p, 0, make([]byte, 2*faulttest.PageSize(t, p)))
		}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bans.db")
			faulttest.Copy(t, pristine, path)
			tc.damage(t, path)
			bans, err := SalvageBoltStore(path)
			if len(bans) != tc.want || (err != nil) != tc.wantErr {
				t.Fatalf("salvaged %d bans, %v; want %d, error %v", len(bans), err, tc.want, tc.wantErr)
			}
		})
	}
}

package antispam

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func validBan() Ban {
	return Ban{Subject: testDevice(3), Since: t0, Until: t0.Add(24 * time.Hour), Reason: "score 100 reached 100 on malformed"}
}

func TestBanEncodingRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Ban)
		wantErr error
	}{
		{"device", func(*Ban) {}, nil},
		{"peer", func(b *Ban) { b.Subject = testPeer(1) }, nil},
		{"empty reason", func(b *Ban) { b.Reason = "" }, nil},
		{"longest reason", func(b *Ban) { b.Reason = strings.Repeat("r", MaxReasonLen) }, nil},
		{"longest ID", func(b *Ban) { b.Subject.ID = strings.Repeat("i", MaxSubjectIDLen) }, nil},
		{"one ns ban", func(b *Ban) { b.Until = b.Since.Add(1) }, nil},
		{"before 1970", func(b *Ban) { b.Since = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC) }, nil},
		{"reason too long", func(b *Ban) { b.Reason = strings.Repeat("r", MaxReasonLen+1) }, ErrInvalidBan},
		{"ID too long", func(b *Ban) { b.Subject.ID = strings.Repeat("i", MaxSubjectIDLen+1) }, ErrInvalidBan},
		{"empty ID", func(b *Ban) { b.Subject.ID = "" }, ErrInvalidBan},
		{"zero kind", func(b *Ban) { b.Subject.Kind = 0 }, ErrInvalidBan},
		{"unknown kind", func(b *Ban) { b.Subject.Kind = 3 }, ErrInvalidBan},
		{"until equals since", func(b *Ban) { b.Until = b.Since }, ErrInvalidBan},
		{"zero times", func(b *Ban) { b.Since, b.Until = time.Time{}, time.Time{} }, ErrInvalidBan},
		{"after 2262", func(b *Ban) { b.Until = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) }, ErrInvalidBan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := validBan()
			tt.mutate(&in)
			k, v, err := encodeBan(in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("encodeBan: %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			out, err := decodeBan(k, v)
			if err != nil {
				t.Fatalf("decodeBan: %v", err)
			}
			if out.Subject != in.Subject || out.Reason != in.Reason || !out.Since.Equal(in.Since) || !out.Until.Equal(in.Until) {
				t.Fatalf("round trip: %+v, want %+v", out, in)
			}
		})
	}
}

func TestDecodeBanCorrupt(t *testing.T) {
	k, v, err := encodeBan(validBan())
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(v []byte) []byte) []byte { return f(bytes.Clone(v)) }
	tests := []struct {
		name      string
		key, val  []byte
		wantField string
	}{
		{"empty key", nil, v, "key"},
		{"kind only", k[:1], v, "key"},
		{"key too long", append([]byte{1}, bytes.Repeat([]byte{'x'}, MaxSubjectIDLen+1)...), v, "key"},
		{"unknown kind", append([]byte{7}, k[1:]...), v, "kind"},
		{"empty value", k, nil, "header"},
		{"short header", k, v[:banHeaderLen-1], "header"},
		{"version 0", k, with(func(v []byte) []byte { v[0] = 0; return v }), "version"},
		{"version 3", k, with(func(v []byte) []byte { v[0] = 3; return v }), "version"},
		{"checksum flipped", k, with(func(v []byte) []byte { v[len(v)-1] ^= 1; return v }), "checksum"},
		{"reason byte flipped", k, with(func(v []byte) []byte { v[banHeaderLen] ^= 1; return v }), "checksum"},
		{"until low byte flipped", k, with(func(v []byte) []byte { v[16] ^= 1; return v }), "checksum"},
		{"key differs", append(bytes.Clone(k[:len(k)-1]), k[len(k)-1]^1), v, "checksum"},
		{"version 1 with checksum", k, with(func(v []byte) []byte { v[0] = 1; return v }), "length"},
		{"reason length over limit", k, with(func(v []byte) []byte { v[17], v[18] = 0xff, 0xff; return v }), "reason"},
		{"truncated reason", k, v[:len(v)-1], "length"},
		{"trailing byte", k, append(bytes.Clone(v), 0), "length"},
		{"until before since", k, with(func(v []byte) []byte { copy(v[1:9], v[9:17]); v[8]++; return v }), "until"},
		{"until equals since", k, with(func(v []byte) []byte { copy(v[9:17], v[1:9]); return v }), "until"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeBan(tt.key, tt.val)
			var re *RecordError
			if !errors.Is(err, ErrCorruptBan) || !errors.As(err, &re) || re.Field != tt.wantField {
				t.Fatalf("decodeBan = %v, want a RecordError on %q", err, tt.wantField)
			}
		})
	}
}

// FuzzDecodeBan checks that the record decoder never panics, bounds what it
// accepts, and accepts only canonical records: whatever it decodes encodes
// back to the same bytes.
func FuzzDecodeBan(f *testing.F) {
	k, v, err := encodeBan(validBan())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(k, v)
	f.Add(k, v[:banHeaderLen])
	f.Add([]byte{1, 'a'}, []byte{1})
	f.Add([]byte{}, []byte{})
	v1 := bytes.Clone(v[:len(v)-banSumLen])
	v1[0] = banRecordV1
	f.Add(k, v1)
	f.Fuzz(func(t *testing.T, key, value []byte) {
		b, err := decodeBan(key, value)
		if err != nil {
			if !errors.Is(err, ErrCorruptBan) {
				t.Fatalf("error %v does not wrap ErrCorruptBan", err)
			}
			return
		}
		if len(b.Subject.ID) > MaxSubjectIDLen || len(b.Reason) > MaxReasonLen {
			t.Fatalf("decoded past the limits: %d-byte ID, %d-byte reason", len(b.Subject.ID), len(b.Reason))
		}
		k2, v2, err := encodeBan(b)
		if err != nil {
			t.Fatalf("decoded ban does not encode: %v", err)
		}
		if value[0] == banRecordV1 { // legacy: rewritten as version 2
			v2 = v2[:len(v2)-banSumLen]
			v2[0] = banRecordV1
		}
		if !bytes.Equal(k2, key) || !bytes.Equal(v2, value) {
			t.Fatalf("not canonical:\nkey   %x -> %x\nvalue %x -> %x", key, k2, value, v2)
		}
	})
}

// storeImpls runs a test against each BanStore.
var storeImpls = []struct {
	name string
	open func(t *testing.T) BanStore
}{
	{"memory", func(*testing.T) BanStore { return NewMemoryStore() }},
	{"bolt", func(t *testing.T) BanStore {
		s, err := OpenBoltStore(filepath.Join(t.TempDir(), "bans.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

func TestBanStoreContract(t *testing.T) {
	for _, impl := range storeImpls {
		t.Run(impl.name, func(t *testing.T) {
			st := impl.open(t)
			a, b := validBan(), validBan()
			b.Subject = testPeer(1)
			for _, ban := range []Ban{a, b} {
				if err := st.Put(ban); err != nil {
					t.Fatal(err)
				}
			}
			a.Reason = "replaced"
			if err := st.Put(a); err != nil {
				t.Fatal(err)
			}
			if err := st.Put(Ban{}); !errors.Is(err, ErrInvalidBan) {
				t.Fatalf("Put of a zero ban: %v", err)
			}
			if err := st.Delete(b.Subject); err != nil {
				t.Fatal(err)
			}
			if err := st.Delete(testPeer(42)); err != nil {
				t.Fatalf("Delete of an absent ban: %v", err)
			}
			if err := st.Delete(Subject{}); !errors.Is(err, ErrInvalidBan) {
				t.Fatalf("Delete of a zero subject: %v", err)
			}
			got, err := st.Load()
			if err != nil || len(got) != 1 || got[0].Subject != a.Subject || got[0].Reason != "replaced" {
				t.Fatalf("Load = %+v, %v; want only the replaced ban", got, err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			if err := st.Put(a); !errors.Is(err, ErrStoreClosed) {
				t.Fatalf("Put after Close: %v", err)
			}
			if err := st.Delete(a.Subject); !errors.Is(err, ErrStoreClosed) {
				t.Fatalf("Delete after Close: %v", err)
			}
			if _, err := st.Load(); !errors.Is(err, ErrStoreClosed) {
				t.Fatalf("Load after Close: %v", err)
			}
		})
	}
}

// The restart case: a ban decided by one process is in force in the next,
// and a ban that expired while the node was down is not reloaded.
func TestBoltStoreSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bans.db")
	st, err := OpenBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLedger(t0, DefaultLedgerConfig(), st)
	if err != nil {
		t.Fatal(err)
	}
	long, short := testPeer(1), testDevice(2)
	if _, newBan, err := l.Record(t0, long, BadSignature); !newBan || err != nil {
		t.Fatalf("Record = %v, %v", newBan, err)
	}
	if err := l.Ban(t0, short, time.Hour, "short"); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Fatalf("store file mode %v, want 0600", mode)
	}

	restart := t0.Add(2 * time.Hour)
	st, err = OpenBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err = NewLedger(restart, DefaultLedgerConfig(), st)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := l.Banned(restart, long)
	if !ok || !b.Until.Equal(t0.Add(24*time.Hour)) || !strings.Contains(b.Reason, "bad-signature") {
		t.Fatalf("after restart: %+v, %v; want the 24 h ban", b, ok)
	}
	if _, ok := l.Banned(restart, short); ok {
		t.Fatal("a ban that expired while down was reloaded")
	}
	stored, err := st.Load()
	if err != nil || len(stored) != 1 {
		t.Fatalf("store holds %+v, %v; want the expired ban deleted at load", stored, err)
	}
}

func TestBoltStoreCorruptRecordSkipped(t *testing.T) {
	st, err := OpenBoltStore(filepath.Join(t.TempDir(), "bans.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	good := validBan()
	if err := st.Put(good); err != nil {
		t.Fatal(err)
	}
	k, v, _ := encodeBan(good)
	k[len(k)-1] ^= 1
	if err := st.putRaw(k, v[:5]); err != nil {
		t.Fatal(err)
	}
	if err := st.putRaw([]byte{0xee, 'x'}, v); err != nil {
		t.Fatal(err)
	}
	for range 2 { // loading twice: reporting a corrupt record deletes nothing
		bans, err := st.Load()
		if len(bans) != 1 || bans[0].Subject != good.Subject {
			t.Fatalf("Load = %+v, want the good ban", bans)
		}
		var re *RecordError
		if !errors.Is(err, ErrCorruptBan) || !errors.As(err, &re) {
			t.Fatalf("Load error %v, want RecordErrors", err)
		}
		if n := strings.Count(err.Error(), ErrCorruptBan.Error()); n != 2 {
			t.Fatalf("%d corrupt records reported, want 2: %v", n, err)
		}
	}
	l, err := NewLedger(t0, DefaultLedgerConfig(), st)
	if !errors.Is(err, ErrCorruptBan) || l == nil {
		t.Fatalf("NewLedger = %v, %v", l, err)
	}
	if _, ok := l.Banned(t0, good.Subject); !ok {
		t.Fatal("good ban lost next to corrupt records")
	}
}

// A second process on the same file gets ErrStoreLocked after the lock
// timeout rather than hanging. flock locks belong to the open file, so a
// second open in this process stands in for a second process.
func TestBoltStoreLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bans.db")
	st, err := OpenBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	start := time.Now()
	second, err := OpenBoltStore(path)
	if err == nil {
		second.Close()
		t.Fatal("second open of a locked store succeeded")
	}
	if !errors.Is(err, ErrStoreLocked) || !strings.Contains(err.Error(), path) {
		t.Fatalf("second open: %v, want ErrStoreLocked naming the path", err)
	}
	if elapsed := time.Since(start); elapsed > boltLockTimeout+2*time.Second {
		t.Fatalf("second open took %v, lock timeout is %v", elapsed, boltLockTimeout)
	}
}

func TestOpenBoltStoreErrors(t *testing.T) {
	dir := t.TempDir()
	notBolt := filepath.Join(dir, "garbage")
	if err := os.WriteFile(notBolt, bytes.Repeat([]byte{0xaa}, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
	}{
		{"missing directory", filepath.Join(dir, "no", "such", "bans.db")},
		{"not a bolt file", notBolt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := OpenBoltStore(tt.path)
			if err == nil {
				st.Close()
				t.Fatal("open succeeded")
			}
			if errors.Is(err, ErrStoreLocked) {
				t.Fatalf("misreported as locked: %v", err)
			}
		})
	}
}

// commits returns the store's transaction ID: one more per commit.
func commits(t *testing.T, s *BoltStore) int {
	t.Helper()
	var id int
	if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// A burst of bans from many goroutines shares commits, and every Put still
// returns only once its ban is stored.
func TestBoltStoreBatchesConcurrentWrites(t *testing.T) {
	for _, tc := range []struct {
		name       string
		write      func(l *Ledger, s Subject) error
		maxCommits int // for 300 writes
	}{
		{"ledger bans", func(l *Ledger, s Subject) error { return l.Ban(t0, s, time.Hour, "burst") }, 100},
		{"ledger unbans", func(l *Ledger, s Subject) error { return l.Unban(s) }, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := OpenBoltStore(filepath.Join(t.TempDir(), "bans.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			l, err := NewLedger(t0, DefaultLedgerConfig(), st)
			if err != nil {
				t.Fatal(err)
			}
			before := commits(t, st)
			var wg sync.WaitGroup
			errs := make(chan error, 300)
			for i := range 300 {
				wg.Go(func() { errs <- tc.write(l, testDevice(i)) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			n := commits(t, st) - before
			if n > tc.maxCommits {
				t.Fatalf("300 writes took %d commits, want at most %d", n, tc.maxCommits)
			}
			t.Logf("300 concurrent writes: %d commits", n)
			bans, err := st.Load()
			if err != nil {
				t.Fatal(err)
			}
			if want := len(l.Bans(t0)); len(bans) != want {
				t.Fatalf("store holds %d bans, ledger %d", len(bans), want)
			}
		})
	}
}

// Expired bans leave the store in one commit, at NewLedger and at Prune.
func TestExpiredBansDeletedInOneCommit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		store    func(t *testing.T) BanStore
		wantLeft int
	}{
		{"bolt", func(t *testing.T) BanStore {
			s, err := OpenBoltStore(filepath.Join(t.TempDir(), "bans.db"))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, 10},
		{"memory", func(*testing.T) BanStore { return NewMemoryStore() }, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.store(t)
			defer st.Close()
			var bans []Ban
			for i := range 40 {
				d := time.Minute // 30 expire by t0+2m
				if i >= 30 {
					d = time.Hour
				}
				bans = append(bans, Ban{Subject: testDevice(i), Since: t0, Until: t0.Add(d), Reason: "x"})
			}
			if err := st.(BatchBanStore).Apply(bans[:20], nil); err != nil {
				t.Fatal(err)
			}
			// 20 stored, 15 expired: NewLedger drops them.
			l, err := NewLedger(t0.Add(2*time.Minute), DefaultLedgerConfig(), st)
			if err != nil {
				t.Fatal(err)
			}
			bs, _ := st.(*BoltStore)
			for _, b := range bans[20:] {
				if err := l.Ban(t0, b.Subject, b.Until.Sub(b.Since), b.Reason); err != nil {
					t.Fatal(err)
				}
			}
			var before int
			if bs != nil {
				before = commits(t, bs)
			}
			if n, err := l.Prune(t0.Add(2 * time.Minute)); err != nil || n != 10 {
				t.Fatalf("Prune = %d, %v; want 10 deleted", n, err)
			}
			if bs != nil {
				if n := commits(t, bs) - before; n != 1 {
					t.Fatalf("Prune took %d commits, want 1", n)
				}
			}
			left, err := st.Load()
			if err != nil || len(left) != tc.wantLeft {
				t.Fatalf("store holds %d bans (%v), want %d", len(left), err, tc.wantLeft)
			}
			for _, b := range left {
				if !b.Active(t0.Add(2 * time.Minute)) {
					t.Fatalf("expired ban %v still stored", b.Subject)
				}
			}
		})
	}
}

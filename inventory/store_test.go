package inventory

import (
	"time"

	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func quotaOf(n uint64) func(string) uint64 { return func(string) uint64 { return n } }

// storeWithObject opens a store in dir and adds data as an object with
// the chunks in commit committed.
func storeWithObject(t *testing.T, dir string, data []byte, commit ...int) (*Store, ID, *Manifest) {
	t.Helper()
	s, _, err := OpenStore(dir, "bitmesh", quotaOf(1<<30))
	if err != nil {
		t.Fatal(err)
	}
	m, id, leaves := testManifest(t, data, MinChunkSize)
	raw, _ := m.Encode()
	if _, _, err := s.Create(raw); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLeaves(id, leaves); err != nil {
		t.Fatal(err)
	}
	h := NewLeafHasher()
	for _, i := range commit {
		v, err := s.VerifyChunk(h, id, uint32(i), chunkOf(data, m, i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Commit(id, []Verified{v}); err != nil {
			t.Fatal(err)
		}
	}
	return s, id, m
}

func chunkOf(data []byte, m *Manifest, i int) []byte {
	off := i * int(m.ChunkSize)
	return data[off : off+m.ChunkLen(i)]
}

func testData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7 / 3)
	}
	return b
}

func haveCount(have []bool) int {
	n := 0
	for _, h := range have {
		if h {
			n++
		}
	}
	return n
}

func TestStoreReopenKeepsAcknowledgedChunks(t *testing.T) {
	dir := t.TempDir()
	data := testData(5*MinChunkSize + 100)
	s, id, _ := storeWithObject(t, dir, data, 0, 2, 5)
	s.Close()
	s, notes, err := OpenStore(dir, "bitmesh", quotaOf(1<<30))
	if err != nil || len(notes) != 0 {
		t.Fatalf("reopen: %v, notes %v", err, notes)
	}
	defer s.Close()
	have := s.Have(id)
	if !have[0] || have[1] || !have[2] || !have[5] || haveCount(have) != 3 {
		t.Fatalf("have %v after reopen", have)
	}
	info, _ := s.Info(id)
	if info.Resumed != 3 || info.Complete {
		t.Fatalf("info %+v", info)
	}
}

func TestStoreOpenRecoversOrRefuses(t *testing.T) {
	data := testData(3 * MinChunkSize)
	tests := []struct {
		name      string
		damage    func(t *testing.T, objDir string)
		wantErr   string // a file name the error must name; "" for a clean open
		wantHave  int
		wantNotes int
	}{
		{"torn last have record", func(t *testing.T, d string) { appendFile(t, filepath.Join(d, "have"), []byte{0, 0, 0}) }, "", 2, 1},
		{"bad have checksum", func(t *testing.T, d string) { flipByte(t, filepath.Join(d, "have"), 5) }, "have", 0, 0},
		{"have names a chunk past the end", func(t *testing.T, d string) { appendFile(t, filepath.Join(d, "have"), haveRecord(9)) }, "have", 0, 0},
		{"manifest damaged", func(t *testing.T, d string) { flipByte(t, filepath.Join(d, "manifest"), 60) }, "manifest", 0, 0},
		{"manifest missing", func(t *testing.T, d string) { os.Remove(filepath.Join(d, "manifest")) }, "manifest", 0, 0},
		{"leaves damaged", func(t *testing.T, d string) { flipByte(t, filepath.Join(d, "leaves"), 3) }, "leaves", 0, 0},
		{"chunk bytes damaged", func(t *testing.T, d string) { flipByte(t, filepath.Join(d, "data"), 10) }, "", 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, id, _ := storeWithObject(t, dir, data, 0, 1)
			s.Close()
			tt.damage(t, filepath.Join(dir, id.String()))
			s, notes, err := OpenStore(dir, "bitmesh", quotaOf(1<<30))
			if tt.wantErr != "" {
				if !errors.Is(err, ErrCorruptStore) || !strings.Contains(err.Error(), filepath.Join(dir, id.String(), tt.wantErr)) {
					t.Fatalf("open: %v; want ErrCorruptStore naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := haveCount(s.Have(id)); got != tt.wantHave || len(notes) != tt.wantNotes {
				t.Fatalf("have %d chunks, notes %q; want %d, %d notes", got, notes, tt.wantHave, tt.wantNotes)
			}
		})
	}
}

func TestStoreRemovesUnfinishedCreation(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, strings.Repeat("a", 64)+".tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	s, notes, err := OpenStore(dir, "bitmesh", quotaOf(1))
	if err != nil || len(notes) != 1 || len(s.IDs()) != 0 {
		t.Fatalf("open: %v, notes %v", err, notes)
	}
	s.Close()
	if err := os.WriteFile(filepath.Join(dir, "stray"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenStore(dir, "bitmesh", quotaOf(1)); !errors.Is(err, ErrCorruptStore) || !strings.Contains(err.Error(), "stray") {
		t.Fatalf("a stray file: %v", err)
	}
}

func TestStoreAdmission(t *testing.T) {
	for _, dir := range []string{"", t.TempDir()} {
		data := testData(2*MinChunkSize + 5)
		s, id, m := storeWithObject(t, dir, data)
		h := NewLeafHasher()
		bad := bytes.Clone(chunkOf(data, m, 1))
		bad[0] ^= 1
		if _, err := s.VerifyChunk(h, id, 1, bad); !errors.Is(err, ErrBadChunk) {
			t.Fatalf("corrupt chunk: %v", err)
		}
		if _, err := s.VerifyChunk(h, id, 2, chunkOf(data, m, 1)); !errors.Is(err, ErrBadChunk) {
			t.Fatalf("chunk at the wrong index: %v", err)
		}
		if _, err := s.VerifyChunk(h, id, 3, []byte{1}); !errors.Is(err, ErrBadChunk) {
			t.Fatalf("chunk past the end: %v", err)
		}
		if _, err := s.Content(id); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("content of an incomplete object: %v", err)
		}
		if _, err := s.Commit(id, []Verified{{index: 1}}); err == nil {
			t.Fatal("committed a chunk whose bytes were never staged")
		}
		var vs []Verified
		for i := range 3 {
			v, err := s.VerifyChunk(h, id, uint32(i), chunkOf(data, m, i))
			if err != nil {
				t.Fatal(err)
			}
			vs = append(vs, v)
		}
		if complete, err := s.Commit(id, vs); err != nil || !complete {
			t.Fatalf("commit: %v, %v", complete, err)
		}
		c, err := s.Content(id)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, c.Size())
		c.ReadAt(got, 0)
		if !bytes.Equal(got, data) {
			t.Fatal("content differs")
		}
		s.Close()
	}
}

func TestStoreQuotaAndSupersede(t *testing.T) {
	s, _, err := OpenStore(t.TempDir(), "bitmesh", quotaOf(3*MinChunkSize))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m1, id1, _ := testManifest(t, testData(2*MinChunkSize), MinChunkSize)
	raw1, _ := m1.Encode()
	if _, _, err := s.Create(raw1); err != nil {
		t.Fatal(err)
	}
	m2, _, _ := testManifest(t, testData(2*MinChunkSize+1), MinChunkSize)
	m2.Supersedes = id1
	if _, err := m2.Sign(testKey(t)); err != nil {
		t.Fatal(err)
	}
	raw2, _ := m2.Encode()
	if _, _, err := s.Create(raw2); !errors.Is(err, ErrQuota) {
		t.Fatalf("over quota: %v", err)
	}
	if old, ok, err := s.Supersede(m2); err != nil || !ok || old != id1 {
		t.Fatalf("supersede: %v, %v, %v", old, ok, err)
	}
	if _, _, err := s.Create(raw2); err != nil {
		t.Fatalf("after the old version went: %v", err)
	}
}

func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(b)
}

func flipByte(t *testing.T, path string, off int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x40
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// FuzzOpenStoreHaveLog opens a store whose have log holds arbitrary
// bytes: it opens, repairs a torn tail or refuses with ErrCorruptStore,
// and never believes in a chunk whose bytes do not hash to its leaf.
func FuzzOpenStoreHaveLog(f *testing.F) {
	f.Add(append(haveRecord(0), haveRecord(2)...))
	f.Add([]byte{1, 2, 3})
	data := testData(3*MinChunkSize + 9)
	f.Fuzz(func(t *testing.T, log []byte) {
		dir := t.TempDir()
		s, id, m := storeWithObject(t, dir, data, 1)
		s.Close()
		if err := os.WriteFile(filepath.Join(dir, id.String(), "have"), log, 0o600); err != nil {
			t.Fatal(err)
		}
		s, _, err := OpenStore(dir, "bitmesh", quotaOf(1<<30))
		if err != nil {
			if !errors.Is(err, ErrCorruptStore) {
				t.Fatalf("error %v is not ErrCorruptStore", err)
			}
			return
		}
		defer s.Close()
		for i, ok := range s.Have(id) {
			if ok && i != 1 {
				t.Fatalf("chunk %d believed present; only chunk 1's bytes were written (%d chunks)", i, m.Chunks())
			}
		}
	})
}

func TestDownloadSchedule(t *testing.T) {
	a, b := peer.ID("a"), peer.ID("b")
	d := newDownload([]bool{false, true, false, false, false, false})
	d.addPeer(a, true)
	d.addPeer(b, false)
	if got := d.idle(1, 2); len(got) != 2 || got[0] != a || got[1] != a {
		t.Fatalf("idle(1, 2) = %v, want two slots of the announcer", got)
	}
	if got := d.idle(1, 2); len(got) != 0 {
		t.Fatalf("idle(1, 2) again = %v, want none", got)
	}
	steps := []struct {
		name      string
		do        func()
		p         peer.ID
		max       int
		wantFirst uint32
		wantCount int
	}{
		{"first run stops at a chunk we have", nil, a, 4, 0, 1},
		{"next peer gets the next free run", nil, b, 2, 2, 2},
		{"a gets what is left", nil, a, 4, 4, 2},
		{"nothing free", nil, b, 4, 0, 0},
		{"b stalls: its chunks go back", func() { d.drop(b, true) }, a, 4, 2, 2},
		{"a dropped peer gets nothing", nil, b, 4, 0, 0},
	}
	for _, s := range steps {
		if s.do != nil {
			s.do()
		}
		first, count := d.next(s.p, s.max, time.Unix(0, 0))
		if first != s.wantFirst || count != s.wantCount {
			t.Fatalf("%s: next(%s) = %d+%d, want %d+%d", s.name, s.p, first, count, s.wantFirst, s.wantCount)
		}
	}
	for _, i := range []uint32{0, 2, 3, 4, 5} {
		d.done(i)
	}
	if !d.complete() || d.usable() != 1 {
		t.Fatalf("complete %v, usable %d", d.complete(), d.usable())
	}
	if d.addPeer(b, true) {
		t.Fatal("a faulty source was taken back")
	}
	c := peer.ID("c")
	d.addPeer(c, false)
	d.drop(c, false)
	if !d.addPeer(c, true) || d.usable() != 2 {
		t.Fatal("a source that lacked the object was not taken back once it announced it")
	}
}

// TestDownloadTailStalls walks the tail stall rule: nothing happens while
// chunks are left to assign or no source is idle; once a source sits idle
// at the tail, a source that has held a chunk for the window is returned
// and the window doubles; its chunks go to the idle one when it is
// dropped; a delivered chunk no longer counts against anyone.
func TestDownloadTailStalls(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	a, b := peer.ID("a"), peer.ID("b")
	d := newDownload(make([]bool, 6))
	d.addPeer(a, true)
	d.addPeer(b, true)
	if _, n := d.next(a, 2, at(0)); n != 2 {
		t.Fatalf("a got %d chunks", n)
	}
	if got, _ := d.tailStalls(at(time.Hour)); got != nil {
		t.Fatalf("chunks left to assign, yet %v stalled", got)
	}
	if _, n := d.next(b, 4, at(time.Second)); n != 4 {
		t.Fatalf("b got %d chunks", n)
	}
	if got, _ := d.tailStalls(at(time.Hour)); got != nil {
		t.Fatalf("no source idle, yet %v stalled", got)
	}
	// a delivers both its chunks and sits idle; b holds four.
	d.stage(0)
	d.stage(1)
	got, recheck := d.tailStalls(at(2 * time.Second))
	if got != nil || !recheck.Equal(at(time.Second+tailWindowMin)) {
		t.Fatalf("at 2 s: stalled %v, recheck %v; want none before %v", got, recheck, at(time.Second+tailWindowMin))
	}
	got, _ = d.tailStalls(at(time.Second + tailWindowMin))
	if len(got) != 1 || got[0] != b {
		t.Fatalf("at the window: stalled %v, want [b]", got)
	}
	if d.window != 2*tailWindowMin {
		t.Fatalf("window %v after a stall, want doubled", d.window)
	}
	// b's late delivery of one chunk still counts; the rest go to a.
	d.stage(2)
	d.drop(b, false)
	if first, n := d.next(a, 8, at(4*time.Second)); first != 3 || n != 3 {
		t.Fatalf("a got %d+%d after b's drop, want 3+3", first, n)
	}
	d.done(0)
	if want := time.Duration(float64(2*tailWindowMin) * tailWindowDecay); d.window != want {
		t.Fatalf("window %v after a chunk committed, want %v", d.window, want)
	}
	for i := range uint32(6) {
		d.done(i)
	}
	if d.window != tailWindowMin {
		t.Fatalf("window %v after six chunks committed, want back at %v", d.window, tailWindowMin)
	}
	if !d.complete() || d.unassigned != 0 || d.peers[a].held != 0 || d.peers[b].held != 0 {
		t.Fatalf("complete %v, unassigned %d, held a %d b %d", d.complete(), d.unassigned, d.peers[a].held, d.peers[b].held)
	}
	if !d.addPeer(b, true) {
		t.Fatal("a source dropped for slowness was not taken back once it announced again")
	}
}

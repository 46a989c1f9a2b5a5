package antispam

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
)

func testPeer(i int) Subject { return PeerSubject(peer.ID(fmt.Sprintf("peer-%d", i))) }

func testDevice(i int) Subject {
	var d identity.DeviceID
	d[0], d[1] = byte(i>>8), byte(i)
	return DeviceSubject(d)
}

// newTestLedger returns a ledger over a fresh MemoryStore, counting OnBan
// calls.
func newTestLedger(t testing.TB, mutate func(*LedgerConfig)) (*Ledger, *MemoryStore, *atomic.Int64) {
	t.Helper()
	var bans atomic.Int64
	cfg := DefaultLedgerConfig()
	cfg.OnBan = func(Ban) { bans.Add(1) }
	if mutate != nil {
		mutate(&cfg)
	}
	st := NewMemoryStore()
	l, err := NewLedger(t0, cfg, st)
	if err != nil {
		t.Fatalf("NewLedger: %v", err)
	}
	return l, st, &bans
}

func TestClassifyReject(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		want   Misbehaviour
		wantOK bool
	}{
		{"malformed", fmt.Errorf("%w: at offset 3", gossip.ErrMalformed), Malformed, true},
		{"oversize", gossip.ErrOversize, Oversize, true},
		{"wrong network", fmt.Errorf("%w: magic", gossip.ErrWrongNetwork), WrongNetwork, true},
		{"wrong topic", fmt.Errorf("x: %w", gossip.ErrWrongTopic), WrongTopic, true},
		{"bad signature", gossip.ErrBadSignature, BadSignature, true},
		{"insufficient work", gossip.ErrInsufficientWork, InsufficientWork, true},
		{"stale", gossip.ErrStale, Stale, true},
		{"future", gossip.ErrFuture, Future, true},
		{"decode error wrapping malformed", decodeError(t), Malformed, true},
		{"nil", nil, 0, false},
		{"unrelated", io.EOF, 0, false},
		{"look-alike text", errors.New("gossip: bad signature"), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ClassifyReject(tt.err)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("ClassifyReject(%v) = %v, %v; want %v, %v", tt.err, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// decodeError returns a real *gossip.DecodeError.
func decodeError(t *testing.T) error {
	t.Helper()
	_, err := gossip.Decode([]byte{0xff})
	if err == nil {
		t.Fatal("Decode of one byte succeeded")
	}
	return err
}

func TestClassifyResult(t *testing.T) {
	tests := []struct {
		name   string
		r      gossip.Result
		want   Misbehaviour
		wantOK bool
	}{
		{"reject", gossip.Result{Verdict: gossip.Reject, Err: gossip.ErrStale}, Stale, true},
		{"ignore blames no one", gossip.Result{Verdict: gossip.Ignore, Err: gossip.ErrStale}, 0, false},
		{"accept", gossip.Result{Verdict: gossip.Accept}, 0, false},
		{"reject without a sentinel", gossip.Result{Verdict: gossip.Reject, Err: io.EOF}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, ok := ClassifyResult(tt.r); got != tt.want || ok != tt.wantOK {
				t.Fatalf("ClassifyResult = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestStrings(t *testing.T) {
	tests := []struct {
		name string
		got  fmt.Stringer
		want string
	}{
		{"misbehaviour", Malformed, "malformed"},
		{"last misbehaviour", InventoryFlood, "inventory-flood"},
		{"zero misbehaviour", Misbehaviour(0), "misbehaviour(0)"},
		{"unknown misbehaviour", Misbehaviour(200), "misbehaviour(200)"},
		{"peer subject", PeerSubject(peer.ID("a")), "peer:" + peer.ID("a").String()},
		{"device subject", DeviceSubject(identity.DeviceID{}), "device:" + identity.DeviceID{}.String()},
		{"unknown kind", Subject{Kind: 9, ID: "x"}, "kind(9):x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.got.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

// Every misbehaviour has a default penalty, and one occurrence scores
// exactly that penalty; only those with 100 persistent points ban at once.
func TestDefaultScoreTablePenalties(t *testing.T) {
	tests := []struct {
		m       Misbehaviour
		want    uint32
		wantBan bool
	}{
		{Malformed, 100, true},
		{Oversize, 50, false},
		{WrongNetwork, 100, true},
		{WrongTopic, 50, false},
		{BadSignature, 100, true},
		{InsufficientWork, 20, false},
		{Stale, 10, false},
		{Future, 10, false},
		{RateExceeded, 1, false},
		{SenderRateExceeded, 1, false},
		{Equivocation, 100, true},
		{CertificateInvalid, 50, false},
		{BadChunk, 100, true},
		{Stalling, 25, false},
		{InventoryFlood, 10, false},
	}
	if len(tests) != int(numMisbehaviours)-1 || len(DefaultScoreTable()) != len(tests) {
		t.Fatalf("%d rows, %d table entries, %d misbehaviours", len(tests), len(DefaultScoreTable()), numMisbehaviours-1)
	}
	for _, tt := range tests {
		t.Run(tt.m.String(), func(t *testing.T) {
			l, st, onBan := newTestLedger(t, nil)
			s := testPeer(1)
			score, banned, err := l.Record(t0, s, tt.m)
			if err != nil || score != tt.want || banned != tt.wantBan {
				t.Fatalf("Record = %d, %v, %v; want %d, %v, nil", score, banned, err, tt.want, tt.wantBan)
			}
			if _, ok := l.Banned(t0, s); ok != tt.wantBan {
				t.Fatalf("Banned = %v, want %v", ok, tt.wantBan)
			}
			stored, _ := st.Load()
			if want := map[bool]int{true: 1, false: 0}[tt.wantBan]; len(stored) != want || onBan.Load() != int64(want) {
				t.Fatalf("%d stored bans, %d OnBan calls; want %d", len(stored), onBan.Load(), want)
			}
		})
	}
}

func TestLedgerThresholdBansOnce(t *testing.T) {
	var got []Ban
	var mu sync.Mutex
	l, st, _ := newTestLedger(t, func(c *LedgerConfig) {
		c.OnBan = func(b Ban) { mu.Lock(); got = append(got, b); mu.Unlock() }
	})
	s := testPeer(1)
	steps := []struct {
		at         time.Duration
		m          Misbehaviour
		wantScore  uint32
		wantNewBan bool
	}{
		{0, WrongTopic, 50, false},
		{time.Second, InsufficientWork, 70, false},
		{2 * time.Second, WrongTopic, 119, true}, // 100 + 20·2^(−1/60)
		{3 * time.Second, WrongTopic, 119, false},
		{4 * time.Second, Malformed, 119, false}, // banned: records change nothing
	}
	for i, st := range steps {
		score, newBan, err := l.Record(t0.Add(st.at), s, st.m)
		if err != nil || score != st.wantScore || newBan != st.wantNewBan {
			t.Fatalf("step %d: Record = %d, %v, %v; want %d, %v, nil", i, score, newBan, err, st.wantScore, st.wantNewBan)
		}
	}
	if len(got) != 1 {
		t.Fatalf("OnBan called %d times, want 1", len(got))
	}
	b := got[0]
	want := Ban{Subject: s, Since: t0.Add(2 * time.Second), Until: t0.Add(2*time.Second + 24*time.Hour)}
	if b.Subject != want.Subject || !b.Since.Equal(want.Since) || !b.Until.Equal(want.Until) {
		t.Fatalf("OnBan got %+v, want %+v", b, want)
	}
	if !strings.Contains(b.Reason, "wrong-topic") {
		t.Fatalf("reason %q does not name the misbehaviour", b.Reason)
	}
	stored, err := st.Load()
	if err != nil || len(stored) != 1 || stored[0].Subject != s || !stored[0].Until.Equal(want.Until) {
		t.Fatalf("store holds %+v, %v; want the ban", stored, err)
	}
}

func TestLedgerManualBan(t *testing.T) {
	tests := []struct {
		name      string
		s         Subject
		d         time.Duration
		wantUntil time.Duration // since t0; 0 = no ban
		wantErr   error
	}{
		{"default duration", testPeer(1), 0, 24 * time.Hour, nil},
		{"negative means default", testPeer(1), -time.Second, 24 * time.Hour, nil},
		{"explicit duration", testDevice(1), time.Hour, time.Hour, nil},
		{"capped", testPeer(1), 1 << 62, MaxBanDuration, nil},
		{"zero subject", Subject{}, time.Hour, 0, ErrInvalidBan},
		{"empty ID", Subject{Kind: SubjectPeer}, time.Hour, 0, ErrInvalidBan},
		{"ID too long", Subject{Kind: SubjectPeer, ID: strings.Repeat("x", MaxSubjectIDLen+1)}, time.Hour, 0, ErrInvalidBan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, st, onBan := newTestLedger(t, nil)
			err := l.Ban(t0, tt.s, tt.d, "operator")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Ban: %v, want %v", err, tt.wantErr)
			}
			b, ok := l.Banned(t0, tt.s)
			if ok != (tt.wantUntil != 0) {
				t.Fatalf("Banned = %v", ok)
			}
			stored, _ := st.Load()
			if tt.wantUntil == 0 {
				if len(stored) != 0 || onBan.Load() != 0 {
					t.Fatalf("failed Ban left %d stored bans, %d OnBan calls", len(stored), onBan.Load())
				}
				return
			}
			if !b.Until.Equal(t0.Add(tt.wantUntil)) || b.Reason != "operator" {
				t.Fatalf("ban %+v, want until +%v for reason operator", b, tt.wantUntil)
			}
			if len(stored) != 1 || onBan.Load() != 1 {
				t.Fatalf("%d stored bans, %d OnBan calls; want 1, 1", len(stored), onBan.Load())
			}
			// Banning again replaces the ban without a second OnBan.
			if err := l.Ban(t0.Add(time.Minute), tt.s, 2*time.Hour, "again"); err != nil {
				t.Fatal(err)
			}
			if b, _ := l.Banned(t0.Add(time.Minute), tt.s); b.Reason != "again" || onBan.Load() != 1 {
				t.Fatalf("after re-ban: %+v, %d OnBan calls", b, onBan.Load())
			}
		})
	}
}

func TestLedgerBanTruncatesReason(t *testing.T) {
	l, st, _ := newTestLedger(t, nil)
	reason := strings.Repeat("é", MaxReasonLen) // 2 bytes each: the cut falls inside one
	if err := l.Ban(t0, testPeer(1), 0, reason); err != nil {
		t.Fatal(err)
	}
	b, _ := l.Banned(t0, testPeer(1))
	if len(b.Reason) != MaxReasonLen || !strings.HasPrefix(reason, b.Reason) {
		t.Fatalf("reason of %d bytes, want %d and a prefix", len(b.Reason), MaxReasonLen)
	}
	if stored, err := st.Load(); err != nil || stored[0].Reason != b.Reason {
		t.Fatalf("stored %+v, %v", stored, err)
	}
}

func TestLedgerUnban(t *testing.T) {
	l, st, onBan := newTestLedger(t, nil)
	s := testPeer(1)
	if _, newBan, _ := l.Record(t0, s, Malformed); !newBan {
		t.Fatal("Malformed did not ban")
	}
	if err := l.Unban(s); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Banned(t0, s); ok {
		t.Fatal("still banned after Unban")
	}
	if got := l.Score(t0, s); got != 0 {
		t.Fatalf("score %d after Unban, want 0", got)
	}
	if stored, _ := st.Load(); len(stored) != 0 {
		t.Fatalf("store still holds %+v", stored)
	}
	// A fresh start: it takes a full threshold again, and OnBan fires again.
	if score, newBan, _ := l.Record(t0, s, Oversize); score != 50 || newBan {
		t.Fatalf("after Unban: %d, %v", score, newBan)
	}
	if _, newBan, _ := l.Record(t0, s, Oversize); !newBan || onBan.Load() != 2 {
		t.Fatalf("second ban: %v, %d OnBan calls", newBan, onBan.Load())
	}
	if err := l.Unban(testPeer(99)); err != nil {
		t.Fatalf("Unban of an unknown subject: %v", err)
	}
}

func TestLedgerBanExpiry(t *testing.T) {
	l, st, _ := newTestLedger(t, nil)
	s := testDevice(7)
	if err := l.Ban(t0, s, time.Hour, "test"); err != nil {
		t.Fatal(err)
	}
	until := t0.Add(time.Hour)
	tests := []struct {
		name string
		at   time.Time
		want bool
	}{
		{"at since", t0, true},
		{"one ns before until", until.Add(-1), true},
		{"at until", until, false},
		{"after until", until.Add(time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := len(l.Bans(tt.at)) == 1; got != tt.want {
				t.Fatalf("Bans lists it: %v, want %v", got, tt.want)
			}
			if _, got := l.Banned(tt.at, s); got != tt.want {
				t.Fatalf("Banned = %v, want %v", got, tt.want)
			}
		})
	}
	// The store keeps the expired ban until Prune.
	if stored, _ := st.Load(); len(stored) != 1 {
		t.Fatalf("store holds %d bans before Prune, want 1", len(stored))
	}
	n, err := l.Prune(until)
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1, nil", n, err)
	}
	if stored, _ := st.Load(); len(stored) != 0 {
		t.Fatalf("store holds %+v after Prune", stored)
	}
	// After expiry the subject starts from zero.
	if score, newBan, _ := l.Record(until, s, SenderRateExceeded); score != 1 || newBan {
		t.Fatalf("Record after expiry = %d, %v; want 1, false", score, newBan)
	}
}

func TestLedgerPruneForgetsDecayedScores(t *testing.T) {
	l, _, _ := newTestLedger(t, nil)
	l.Record(t0, testPeer(1), Stale)      // transient: decays to 0
	l.Record(t0, testPeer(2), WrongTopic) // persistent: kept
	if n, err := l.Prune(t0.Add(time.Hour)); n != 0 || err != nil {
		t.Fatalf("Prune = %d, %v", n, err)
	}
	if scored, banned := l.Tracked(); scored != 1 || banned != 0 {
		t.Fatalf("Tracked = %d, %d; want 1, 0", scored, banned)
	}
}

func TestLedgerSubjectsIndependent(t *testing.T) {
	l, _, _ := newTestLedger(t, nil)
	p := Subject{Kind: SubjectPeer, ID: "same"}
	d := Subject{Kind: SubjectDevice, ID: "same"}
	l.Record(t0, p, Malformed)
	l.Record(t0, d, SenderRateExceeded)
	if _, ok := l.Banned(t0, d); ok {
		t.Fatal("banning a peer banned the device with the same ID")
	}
	if got := l.Score(t0, d); got != 1 {
		t.Fatalf("device score %d, want 1", got)
	}
	if got := l.Score(t0, testPeer(2)); got != 0 {
		t.Fatalf("unrelated peer score %d", got)
	}
	want := []SubjectScore{{Subject: p, Score: 100, Banned: true}, {Subject: d, Score: 1}}
	if got := l.Scores(t0); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Scores = %v, want %v", got, want)
	}
}

func TestLedgerMaxTracked(t *testing.T) {
	l, _, _ := newTestLedger(t, func(c *LedgerConfig) { c.MaxTracked = 4 })
	// Two banned subjects and one a point below the threshold.
	l.Record(t0, testPeer(1), Malformed)
	l.Ban(t0, testDevice(1), 0, "manual")
	near := testPeer(2)
	l.Record(t0, near, Oversize)
	for range 49 {
		l.Record(t0, near, RateExceeded)
	}
	if got := l.Score(t0, near); got != 99 {
		t.Fatalf("setup: score %d, want 99", got)
	}
	// A crowd of fresh identities, each scoring 1.
	for i := range 1000 {
		l.Record(t0.Add(time.Duration(i)*time.Millisecond), testDevice(100+i), SenderRateExceeded)
	}
	now := t0.Add(time.Second)
	if scored, banned := l.Tracked(); scored != 4 || banned != 2 {
		t.Fatalf("Tracked = %d scored, %d banned; want 4, 2", scored, banned)
	}
	for _, s := range []Subject{testPeer(1), testDevice(1)} {
		if _, ok := l.Banned(now, s); !ok {
			t.Fatalf("%v evicted while banned", s)
		}
	}
	if got := l.Score(now, near); got < 98 {
		t.Fatalf("near-threshold subject scored %d after the flood: evicted", got)
	}
}

func TestLedgerConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*LedgerConfig)
		ok     bool
	}{
		{"default", func(*LedgerConfig) {}, true},
		{"empty table", func(c *LedgerConfig) { c.Table = ScoreTable{} }, true},
		{"nil table", func(c *LedgerConfig) { c.Table = nil }, false},
		{"zero threshold", func(c *LedgerConfig) { c.BanThreshold = 0 }, false},
		{"zero ban duration", func(c *LedgerConfig) { c.BanDuration = 0 }, false},
		{"ban duration too long", func(c *LedgerConfig) { c.BanDuration = MaxBanDuration + 1 }, false},
		{"zero half-life", func(c *LedgerConfig) { c.HalfLife = 0 }, false},
		{"zero MaxTracked", func(c *LedgerConfig) { c.MaxTracked = 0 }, false},
		{"unknown misbehaviour", func(c *LedgerConfig) { c.Table[numMisbehaviours] = Penalty{} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultLedgerConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
				t.Fatalf("Validate = %v, want ok=%v", err, tt.ok)
			}
			if _, err := NewLedger(t0, cfg, nil); (err == nil) != tt.ok {
				t.Fatalf("NewLedger = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestLedgerDisabledMisbehaviour(t *testing.T) {
	l, _, _ := newTestLedger(t, func(c *LedgerConfig) { delete(c.Table, Stale) })
	if score, newBan, err := l.Record(t0, testPeer(1), Stale); score != 0 || newBan || err != nil {
		t.Fatalf("Record of a disabled misbehaviour = %d, %v, %v", score, newBan, err)
	}
	if scored, _ := l.Tracked(); scored != 0 {
		t.Fatalf("a disabled misbehaviour started tracking: %d", scored)
	}
}

func TestNewLedgerLoad(t *testing.T) {
	st := NewMemoryStore()
	active := Ban{Subject: testPeer(1), Since: t0, Until: t0.Add(time.Hour), Reason: "a"}
	expired := Ban{Subject: testPeer(2), Since: t0.Add(-2 * time.Hour), Until: t0.Add(-time.Hour), Reason: "b"}
	for _, b := range []Ban{active, expired} {
		if err := st.Put(b); err != nil {
			t.Fatal(err)
		}
	}
	st.putRaw([]byte{byte(SubjectPeer), 'z'}, []byte{9}) // corrupt
	l, err := NewLedger(t0, DefaultLedgerConfig(), st)
	if !errors.Is(err, ErrCorruptBan) || l == nil {
		t.Fatalf("NewLedger = %v, %v; want a ledger and ErrCorruptBan", l, err)
	}
	bans := l.Bans(t0)
	if len(bans) != 1 || bans[0].Subject != active.Subject {
		t.Fatalf("loaded %+v, want only the active ban", bans)
	}
	stored, err := st.Load()
	if len(stored) != 1 || !errors.Is(err, ErrCorruptBan) {
		t.Fatalf("store after load: %+v, %v; want the active ban and the corrupt record kept", stored, err)
	}
}

// failingStore fails every write, to check that a ban holds in memory even
// when the store cannot record it.
type failingStore struct{}

var errDiskFull = errors.New("disk full")

func (failingStore) Put(Ban) error        { return errDiskFull }
func (failingStore) Delete(Subject) error { return errDiskFull }
func (failingStore) Load() ([]Ban, error) { return nil, nil }
func (failingStore) Close() error         { return nil }

func TestLedgerStoreErrors(t *testing.T) {
	l, err := NewLedger(t0, DefaultLedgerConfig(), failingStore{})
	if err != nil {
		t.Fatal(err)
	}
	s := testPeer(1)
	if _, newBan, err := l.Record(t0, s, BadSignature); !newBan || !errors.Is(err, errDiskFull) {
		t.Fatalf("Record = %v, %v; want a ban and the store's error", newBan, err)
	}
	if _, ok := l.Banned(t0, s); !ok {
		t.Fatal("ban not in force after a store failure")
	}
	if err := l.Unban(s); !errors.Is(err, errDiskFull) {
		t.Fatalf("Unban = %v", err)
	}
	if _, ok := l.Banned(t0, s); ok {
		t.Fatal("Unban did not lift the ban in memory")
	}
	l.Ban(t0, s, time.Minute, "x")
	l.Banned(t0.Add(time.Hour), s) // expires in memory; the store delete is pending
	if _, err := l.Prune(t0.Add(time.Hour)); !errors.Is(err, errDiskFull) {
		t.Fatalf("Prune = %v", err)
	}
	if len(l.unstored) != 1 {
		t.Fatalf("failed delete not kept for retry: %d pending", len(l.unstored))
	}

	if _, err := NewLedger(t0, DefaultLedgerConfig(), loadFailStore{}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("NewLedger over an unreadable store = %v", err)
	}
}

type loadFailStore struct{ BanStore }

func (loadFailStore) Load() ([]Ban, error) { return nil, io.ErrUnexpectedEOF }

// Concurrent scoring, banning and unbanning, under -race: every subject is
// banned at most once per crossing, OnBan calls match, and the store ends
// up agreeing with memory.
func TestLedgerConcurrent(t *testing.T) {
	l, st, onBan := newTestLedger(t, func(c *LedgerConfig) { c.MaxTracked = 64 })
	const workers, subjects, rounds = 8, 32, 200
	var newBans atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				now := t0.Add(time.Duration(i) * time.Millisecond)
				s := testPeer((w*rounds + i) % subjects)
				switch i % 10 {
				case 7:
					_ = l.Ban(now, testDevice(i%subjects), 0, "manual")
				case 8:
					_ = l.Unban(testDevice(i % subjects))
				case 9:
					l.Scores(now)
					l.Bans(now)
				default:
					if _, nb, err := l.Record(now, s, WrongTopic); err != nil {
						t.Error(err)
					} else if nb {
						newBans.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	if got := len(l.Bans(t0)); newBans.Load() != subjects || got < subjects {
		t.Fatalf("%d new bans reported, %d bans; want %d peers banned once each", newBans.Load(), got, subjects)
	}
	if manual := onBan.Load() - newBans.Load(); manual < 1 {
		t.Fatalf("OnBan %d calls for %d automatic bans", onBan.Load(), newBans.Load())
	}
	stored, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(stored) != fmt.Sprint(l.Bans(t0)) {
		t.Fatalf("store %v\ndisagrees with memory %v", stored, l.Bans(t0))
	}
}

package antispam

import (
	"bytes"
	"context"
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
)

// powNow is the fixed clock of the proof-of-work tests.
var powNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

var powNetwork = gossip.NetworkFromName("bitmesh-test")

// powKey returns a deterministic key whose 32 secret bytes all equal seed.
func powKey(tb testing.TB, seed byte) *identity.PrivateKey {
	tb.Helper()
	k, err := identity.PrivateKeyFromBytes(bytes.Repeat([]byte{seed}, identity.PrivateKeySize))
	if err != nil {
		tb.Fatalf("key from seed %#x: %v", seed, err)
	}
	return k
}

// powEnvelope is a sensor reading from sender, ready to mint.
func powEnvelope(sender identity.DeviceID) *gossip.Envelope {
	return &gossip.Envelope{
		Network: powNetwork,
		Time:    powNow,
		Seq:     1,
		Sender:  sender,
		Topic:   "sensors/temp",
		Payload: []byte(`{"celsius":21.5}`),
	}
}

func powValidator(tb testing.TB) *gossip.Validator {
	tb.Helper()
	v, err := gossip.NewValidator(gossip.DefaultValidatorConfig(powNetwork))
	if err != nil {
		tb.Fatalf("NewValidator: %v", err)
	}
	return v
}

func mustID(tb testing.TB, e *gossip.Envelope) gossip.ID {
	tb.Helper()
	id, err := e.ID()
	if err != nil {
		tb.Fatalf("ID: %v", err)
	}
	return id
}

// signUnchecked signs e without Seal's proof-of-work check, as a dishonest
// sender would.
func signUnchecked(tb testing.TB, e *gossip.Envelope, key *identity.PrivateKey) []byte {
	tb.Helper()
	e.Sender = key.DeviceID()
	id := mustID(tb, e)
	sig, err := key.SignHash(id)
	if err != nil {
		tb.Fatalf("SignHash: %v", err)
	}
	e.Signature = sig
	raw, err := e.Encode()
	if err != nil {
		tb.Fatalf("Encode: %v", err)
	}
	return raw
}

// firstNonce is the reference search: the first nonce from start up whose
// ID, hashed the slow way with e's committed target, has zeroBits leading
// zero bits.
func firstNonce(tb testing.TB, e gossip.Envelope, zeroBits int, start uint64) uint64 {
	tb.Helper()
	for e.PoWNonce = start; ; e.PoWNonce++ {
		if mustID(tb, &e).LeadingZeroBits() >= zeroBits {
			return e.PoWNonce
		}
	}
}

func TestMintSealValidate(t *testing.T) {
	key := powKey(t, 1)
	tests := []struct {
		name    string
		target  uint8
		workers int
		start   uint64
	}{
		{"target 0 needs no work", 0, 1, 7},
		{"target 1", 1, 1, 0},
		{"target 8, one worker", 8, 1, 0},
		{"target 12, one worker", 12, 1, 0},
		{"target 12, two workers", 12, 2, 0},
		{"target 12, four workers", 12, 4, 0},
		{"target 12, GOMAXPROCS workers", 12, 0, 0},
		{"target 10, more workers than cores", 10, 16, 0},
		{"nonce search wraps past 2^64-1", 10, 3, math.MaxUint64 - 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := powEnvelope(key.DeviceID())
			e.PoWNonce = tt.start
			if err := MintProofOfWork(context.Background(), e, tt.target, tt.workers); err != nil {
				t.Fatalf("MintProofOfWork: %v", err)
			}
			if e.PoWTarget != tt.target {
				t.Fatalf("PoWTarget = %d, want %d", e.PoWTarget, tt.target)
			}
			if tt.target == 0 && e.PoWNonce != tt.start {
				t.Errorf("target 0 changed the nonce to %d", e.PoWNonce)
			}
			raw, id, err := e.Seal(key)
			if err != nil {
				t.Fatalf("Seal after minting: %v", err)
			}
			if !VerifyProofOfWork(id, tt.target) {
				t.Errorf("ID %s has %d zero bits, target %d", id, id.LeadingZeroBits(), tt.target)
			}
			if r := powValidator(t).Validate(powNow, e.Topic, raw); r.Verdict != gossip.Accept {
				t.Errorf("validator: %v: %v", r.Verdict, r.Err)
			}
		})
	}
}

// One worker tries nonces in order, so it must find exactly the reference
// search's nonce: the fast path skips nothing and hashes what gossip hashes.
func TestMintOneWorkerFindsFirstNonce(t *testing.T) {
	key := powKey(t, 2)
	for _, start := range []uint64{0, 1000, math.MaxUint64 - 300} {
		e := powEnvelope(key.DeviceID())
		e.PoWNonce, e.PoWTarget = start, 9
		want := firstNonce(t, *e, 9, start)
		if err := MintProofOfWork(context.Background(), e, 9, 1); err != nil {
			t.Fatalf("start %d: %v", start, err)
		}
		if e.PoWNonce != want {
			t.Errorf("start %d: nonce %d, reference search finds %d", start, e.PoWNonce, want)
		}
	}
}

func TestMintErrors(t *testing.T) {
	key := powKey(t, 1)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel2()
	tests := []struct {
		name   string
		ctx    context.Context
		mutate func(*gossip.Envelope)
		target uint8
		want   error // matched with errors.Is; nil means any error
	}{
		{"target above MaxTarget", context.Background(), nil, MaxTarget + 1, ErrTargetTooHigh},
		{"target 255", context.Background(), nil, 255, ErrTargetTooHigh},
		{"sender unset", context.Background(), func(e *gossip.Envelope) { e.Sender = identity.DeviceID{} }, 8, ErrNoSender},
		{"invalid topic", context.Background(), func(e *gossip.Envelope) { e.Topic = "has space" }, 8, nil},
		{"context already cancelled", cancelled, nil, 8, context.Canceled},
		{"deadline already passed", expired, nil, 8, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := powEnvelope(key.DeviceID())
			e.PoWTarget, e.PoWNonce = 3, 99
			if tt.mutate != nil {
				tt.mutate(e)
			}
			before := *e
			err := MintProofOfWork(tt.ctx, e, tt.target, 2)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if e.PoWTarget != before.PoWTarget || e.PoWNonce != before.PoWNonce {
				t.Errorf("failed mint changed the envelope: target %d nonce %d", e.PoWTarget, e.PoWNonce)
			}
		})
	}
}

// cancelAfterPolls is a context that cancels itself on the n-th call of
// Done: workers poll Done every pollEvery attempts, so cancellation lands
// mid-search, after real work, with no clock involved.
type cancelAfterPolls struct {
	context.Context
	cancel context.CancelFunc
	n      int64
	polls  atomic.Int64
}

func (c *cancelAfterPolls) Done() <-chan struct{} {
	if c.polls.Add(1) == c.n {
		c.cancel()
	}
	return c.Context.Done()
}

// A target nobody can reach in a test's lifetime stops on cancellation, and
// mint waits for its workers (TestMain's goleak checks none is left).
func TestMintCancelMidSearch(t *testing.T) {
	key := powKey(t, 1)
	for _, workers := range []int{1, 2, 4} {
		ctx, cancel := context.WithCancel(context.Background())
		c := &cancelAfterPolls{Context: ctx, cancel: cancel, n: int64(3 * workers)}
		e := powEnvelope(key.DeviceID())
		attempts, err := mint(c, e, 40, workers)
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("workers %d: err = %v, want context.Canceled", workers, err)
		}
		if attempts < pollEvery {
			t.Errorf("workers %d: cancelled after %d attempts, want at least one poll interval", workers, attempts)
		}
		// Each worker stops at its next poll: at most one interval each past
		// the cancelling poll.
		if limit := uint64(3*workers+workers) * pollEvery; attempts > limit {
			t.Errorf("workers %d: %d attempts, want at most %d", workers, attempts, limit)
		}
		if e.PoWTarget != 0 || e.PoWNonce != 0 {
			t.Errorf("workers %d: cancelled mint changed the envelope", workers)
		}
	}
}

// The target is signed: relabelling an envelope mined for 8 as 12 changes
// its ID, so the work no longer counts and both Seal and the validator
// refuse it.
func TestMintCommittedTargetHonoured(t *testing.T) {
	key := powKey(t, 1)
	e := powEnvelope(key.DeviceID())
	if err := MintProofOfWork(context.Background(), e, 8, 1); err != nil {
		t.Fatal(err)
	}
	e.PoWTarget = 12
	if id := mustID(t, e); VerifyProofOfWork(id, 12) {
		t.Fatalf("relabelled ID %s meets 12 by chance; pick another envelope", id)
	}
	if _, _, err := e.Seal(key); !errors.Is(err, gossip.ErrInsufficientWork) {
		t.Errorf("Seal of relabelled envelope: %v, want ErrInsufficientWork", err)
	}
	raw := signUnchecked(t, e, key)
	if r := powValidator(t).Validate(powNow, e.Topic, raw); r.Verdict != gossip.Reject || !errors.Is(r.Err, gossip.ErrInsufficientWork) {
		t.Errorf("validator: %v: %v, want Reject for insufficient work", r.Verdict, r.Err)
	}
}

// An ID luckier than its committed target proves only the committed target:
// the sender signed the target, not the luck. A topic requiring 8 must not
// take an envelope that commits to 4, whatever its ID.
func TestLuckyIDCountsOnlyItsCommittedTarget(t *testing.T) {
	key := powKey(t, 1)
	e := powEnvelope(key.DeviceID())
	e.PoWTarget = 4
	e.PoWNonce = firstNonce(t, *e, 12, 0) // 12 zero bits while committing to 4
	id := mustID(t, e)
	if id.LeadingZeroBits() < 12 {
		t.Fatalf("lucky ID has only %d zero bits", id.LeadingZeroBits())
	}
	d, err := NewDifficulty(DifficultyConfig{Topics: map[string]uint8{"sensors/#": 8}})
	if err != nil {
		t.Fatal(err)
	}
	base, _ := d.RequiredWork(powNow, e.Topic)
	// The validator's check is VerifyProofOfWork(id, committed) plus
	// committed ≥ base; the ID's own count never enters.
	if !VerifyProofOfWork(id, e.PoWTarget) {
		t.Errorf("lucky ID misses its own committed target")
	}
	if e.PoWTarget >= base {
		t.Errorf("committed %d ≥ base %d: the lucky envelope would pass", e.PoWTarget, base)
	}
	// Re-minting for the topic's base re-searches: the target is inside the
	// ID, so the lucky nonce is not reused.
	if err := MintProofOfWork(context.Background(), e, base, 1); err != nil {
		t.Fatal(err)
	}
	if got := mustID(t, e); got == id || e.PoWTarget != base {
		t.Errorf("re-minted envelope kept the lucky ID or target %d", e.PoWTarget)
	}
}

// A gateway mints for a weak device that signs afterwards. The work is bound
// to the sender, so work minted under the gateway's own key is useless to
// the device.
func TestDelegatedMint(t *testing.T) {
	device, gateway := powKey(t, 3), powKey(t, 4)
	tests := []struct {
		name     string
		mintedAs identity.DeviceID
		wantErr  error
	}{
		{"gateway mints with the device as sender", device.DeviceID(), nil},
		{"gateway mints under its own key", gateway.DeviceID(), gossip.ErrInsufficientWork},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := powEnvelope(tt.mintedAs)
			if err := MintProofOfWork(context.Background(), e, 16, 2); err != nil {
				t.Fatal(err)
			}
			// The envelope crosses to the device; it signs without mining.
			raw, _, err := e.Seal(device)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("device Seal: %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if r := powValidator(t).Validate(powNow, e.Topic, raw); r.Verdict != gossip.Accept {
				t.Errorf("validator: %v: %v", r.Verdict, r.Err)
			}
		})
	}
}

// The fast path must hash exactly what gossip hashes for every position of
// the nonce in the final block(s): payload lengths 0..130 move it through a
// whole block, across the block boundary and between one- and two-block
// tails.
func TestIDMinerMatchesReference(t *testing.T) {
	key := powKey(t, 1)
	for n := 0; n <= 130; n++ {
		e := powEnvelope(key.DeviceID())
		e.Payload = bytes.Repeat([]byte{'p'}, n)
		e.PoWTarget = 5
		unsigned, err := e.AppendUnsigned(nil)
		if err != nil {
			t.Fatal(err)
		}
		m := newIDMiner(unsigned)
		// crypto/sha256 always takes the fast path; only another SHA-256
		// implementation (boringcrypto) would fall back.
		if !m.fast {
			t.Fatalf("payload %d: fast path disabled", n)
		}
		fast := m.newWorker()
		slowMiner := *m
		slowMiner.fast = false
		slow := slowMiner.newWorker()
		for _, nonce := range []uint64{0, 1, 0x0102030405060708, math.MaxUint64} {
			e.PoWNonce = nonce
			want := mustID(t, e)
			if got := fast.sum(nonce); !bytes.Equal(got, want[:]) {
				t.Fatalf("payload %d nonce %d: fast %x, want %x", n, nonce, got, want)
			}
			if got := slow.sum(nonce); !bytes.Equal(got, want[:]) {
				t.Fatalf("payload %d nonce %d: slow %x, want %x", n, nonce, got, want)
			}
			if got, want := fast.leadingZeroBits(nonce), min(want.LeadingZeroBits(), 64); got != want {
				t.Fatalf("payload %d nonce %d: %d zero bits, want %d", n, nonce, got, want)
			}
		}
	}
}

func TestVerifyProofOfWork(t *testing.T) {
	id15 := gossip.ID{0x00, 0x01, 0xff} // 15 leading zero bits
	tests := []struct {
		name   string
		id     gossip.ID
		target uint8
		want   bool
	}{
		{"target 0 always passes", gossip.ID{0xff}, 0, true},
		{"exactly met", id15, 15, true},
		{"exceeded", id15, 8, true},
		{"one bit short", id15, 16, false},
		{"no zero bits", gossip.ID{0x80}, 1, false},
		{"all-zero ID meets 255", gossip.ID{}, 255, true},
	}
	for _, tt := range tests {
		if got := VerifyProofOfWork(tt.id, tt.target); got != tt.want {
			t.Errorf("%s: VerifyProofOfWork = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestExpectedAttempts(t *testing.T) {
	tests := []struct {
		target uint8
		want   float64
	}{
		{0, 1}, {1, 2}, {8, 256}, {20, 1 << 20}, {64, math.Ldexp(1, 64)},
	}
	for _, tt := range tests {
		if got := ExpectedAttempts(tt.target); got != tt.want {
			t.Errorf("ExpectedAttempts(%d) = %v, want %v", tt.target, got, tt.want)
		}
	}
}

package anchor

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// fakeKind is a kind only these tests register: its proof is one byte, 1
// for a confirmed anchor, 0 for a pending one.
const fakeKind = "test-fake"

var registerFake sync.Once

func useFakeKind() {
	registerFake.Do(func() {
		RegisterAnchorKind(fakeKind, func(p AnchorProof) (AnchorAttestation, error) {
			switch string(p.Proof) {
			case "\x01":
				return AnchorAttestation{Kind: fakeKind, Digest: p.Digest, BlockHeight: 7}, nil
			case "\x00":
				return AnchorAttestation{}, ErrAnchorPending
			}
			return AnchorAttestation{}, ErrAnchorInvalid
		})
	})
}

func TestVerifyAnchorDispatchesToRegisteredKind(t *testing.T) {
	useFakeKind()
	at, err := VerifyAnchor(AnchorProof{Kind: fakeKind, Digest: [32]byte{3}, Proof: []byte{1}})
	if err != nil || at.Kind != fakeKind || at.Digest != [32]byte{3} || at.BlockHeight != 7 {
		t.Fatalf("VerifyAnchor = %+v, %v", at, err)
	}
	if _, err := VerifyAnchor(AnchorProof{Kind: fakeKind, Proof: []byte{2}}); !errors.Is(err, ErrAnchorInvalid) {
		t.Fatalf("bad fake proof: %v", err)
	}
	// The size bound holds before any verifier runs.
	if _, err := VerifyAnchor(AnchorProof{Kind: fakeKind, Proof: make([]byte, MaxAnchorProofSize+1)}); !errors.Is(err, ErrAnchorInvalid) {
		t.Fatalf("oversize proof: %v", err)
	}
}

func TestVerifyAnchorRefusesUnregisteredKind(t *testing.T) {
	for _, kind := range []string{"no-such-kind", ""} {
		_, err := VerifyAnchor(AnchorProof{Kind: kind, Proof: []byte{1}})
		var uk *UnknownAnchorKindError
		if !errors.Is(err, ErrUnknownAnchorKind) || !errors.As(err, &uk) || uk.Kind != kind {
			t.Fatalf("kind %q: err = %v, want an *UnknownAnchorKindError", kind, err)
		}
	}
	// This test binary cannot import anchor/ots or anchor/bitcoin (they
	// import anchor), so their kinds are unregistered here: a proof of
	// either is refused, and the message says what to import.
	for kind, pkg := range map[string]string{KindOpenTimestamps: "anchor/ots", KindBitcoinOpReturn: "anchor/bitcoin"} {
		_, err := VerifyAnchor(AnchorProof{Kind: kind, Proof: []byte{1}})
		var uk *UnknownAnchorKindError
		if !errors.As(err, &uk) || uk.Kind != kind {
			t.Fatalf("kind %q without its package: err = %v", kind, err)
		}
		if msg := err.Error(); msg != `anchor: no verifier for kind "`+kind+`" (import github.com/bitmesh/bitmesh/`+pkg+`)` {
			t.Fatalf("message %q does not name %s", msg, pkg)
		}
	}
}

func TestRegisterAnchorKindPanics(t *testing.T) {
	useFakeKind()
	verify := func(AnchorProof) (AnchorAttestation, error) { return AnchorAttestation{}, nil }
	for name, register := range map[string]func(){
		"duplicate":    func() { RegisterAnchorKind(fakeKind, verify) },
		"empty kind":   func() { RegisterAnchorKind("", verify) },
		"nil verifier": func() { RegisterAnchorKind("test-nil", nil) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			register()
		})
	}
	if _, err := VerifyAnchor(AnchorProof{Kind: "test-nil"}); !errors.Is(err, ErrUnknownAnchorKind) {
		t.Fatalf("a refused registration took effect: %v", err)
	}
}

// TestRegistryConcurrent registers and verifies at once, for the race
// detector.
// registryRuns makes each run's kinds new: the registry is process-wide
// and refuses a kind twice, and `go test -count=N` runs this test N times.
var registryRuns atomic.Int32

func TestRegistryConcurrent(t *testing.T) {
	useFakeKind()
	run := registryRuns.Add(1)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			RegisterAnchorKind(fmt.Sprintf("%s-%d-%d", fakeKind, run, i), func(AnchorProof) (AnchorAttestation, error) { return AnchorAttestation{}, nil })
		}()
		go func() {
			defer wg.Done()
			if _, err := VerifyAnchor(AnchorProof{Kind: fakeKind, Proof: []byte{1}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// TestVerifyReceiptAnchorKinds: a receipt's anchors are checked by the
// registered verifiers, and one of a kind without a verifier makes the
// receipt fail, pending or not.
func TestVerifyReceiptAnchorKinds(t *testing.T) {
	useFakeKind()
	f := newReceiptFixture(t)
	r := cloneReceipt(f.receipts[3])
	c, _, err := VerifyCosignatures(r.Checkpoint, f.logKey.DeviceID(), f.witnesses, ckptOrigin)
	if err != nil {
		t.Fatal(err)
	}
	digest := AnchorDigest(c)
	for _, tc := range []struct {
		name   string
		anchor AnchorProof
		want   error
	}{
		{"confirmed", AnchorProof{Kind: fakeKind, Digest: digest, Proof: []byte{1}}, nil},
		{"pending", AnchorProof{Kind: fakeKind, Digest: digest, Pending: true, Proof: []byte{0}}, nil},
		{"invalid", AnchorProof{Kind: fakeKind, Digest: digest, Proof: []byte{9}}, ErrAnchorInvalid},
		{"unregistered kind", AnchorProof{Kind: "no-such-kind", Digest: digest, Pending: true}, ErrUnknownAnchorKind},
		{"other digest", AnchorProof{Kind: fakeKind, Digest: [32]byte{1}, Proof: []byte{1}}, ErrAnchorInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.Anchors = []AnchorProof{tc.anchor}
			_, err := f.verify(r)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("VerifyReceipt: %v, want %v", err, tc.want)
			}
		})
	}
}

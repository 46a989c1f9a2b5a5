package gossip

import (
	"bytes"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/identity"
)

// testNow is the fixed local clock of every validation test.
var testNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// testNetworkName names the mesh the tests validate for.
const testNetworkName = "bitmesh-test"

var testNetwork = NetworkFromName(testNetworkName)

// testKey returns a deterministic key whose 32 secret bytes all equal seed.
func testKey(tb testing.TB, seed byte) *identity.PrivateKey {
	tb.Helper()
	k, err := identity.PrivateKeyFromBytes(bytes.Repeat([]byte{seed}, identity.PrivateKeySize))
	if err != nil {
		tb.Fatalf("key from seed %#x: %v", seed, err)
	}
	return k
}

// baseEnvelope is a typical sensor reading on testNetwork at testNow.
func baseEnvelope() Envelope {
	return Envelope{
		Network: testNetwork,
		Time:    testNow,
		Seq:     1,
		Topic:   "sensors/temp",
		Payload: []byte(`{"celsius":21.5}`),
	}
}

// seal applies mutate (may be nil) to baseEnvelope, seals it with key and
// returns the encoding and the sealed envelope.
func seal(tb testing.TB, key *identity.PrivateKey, mutate func(*Envelope)) ([]byte, *Envelope) {
	tb.Helper()
	e := baseEnvelope()
	if mutate != nil {
		mutate(&e)
	}
	raw, _ := signUnchecked(tb, &e, key)
	return raw, &e
}

// signUnchecked seals e as Seal does but without Seal's proof-of-work check,
// so tests can build envelopes that miss their committed target.
func signUnchecked(tb testing.TB, e *Envelope, key *identity.PrivateKey) ([]byte, ID) {
	tb.Helper()
	e.Sender = key.DeviceID()
	b, err := e.AppendUnsigned(nil)
	if err != nil {
		tb.Fatalf("AppendUnsigned: %v", err)
	}
	id := HashUnsigned(b)
	sig, err := key.SignHash(id)
	if err != nil {
		tb.Fatalf("SignHash: %v", err)
	}
	e.Signature = sig
	return append(b, sig[:]...), id
}

// mine searches nonces from 0 up for the first one whose ID meets e.PoWTarget.
func mine(tb testing.TB, e *Envelope) {
	tb.Helper()
	for e.PoWNonce = 0; ; e.PoWNonce++ {
		id, err := e.ID()
		if err != nil {
			tb.Fatalf("ID: %v", err)
		}
		if id.LeadingZeroBits() >= int(e.PoWTarget) {
			return
		}
	}
}

// unmine searches nonces from 0 up for the first one whose ID misses
// e.PoWTarget.
func unmine(tb testing.TB, e *Envelope) {
	tb.Helper()
	for e.PoWNonce = 0; ; e.PoWNonce++ {
		id, err := e.ID()
		if err != nil {
			tb.Fatalf("ID: %v", err)
		}
		if id.LeadingZeroBits() < int(e.PoWTarget) {
			return
		}
	}
}

// flip returns a copy of b with byte i inverted.
func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0xff
	return c
}

// payloadOffset is the offset of the payload in an encoding of e.
func payloadOffset(e *Envelope) int { return 1 + 4 + 8 + 8 + 32 + 1 + len(e.Topic) + 4 }

// newTestValidator returns a validator for testNetwork with the default
// policy changed by mutate (may be nil).
func newTestValidator(tb testing.TB, mutate func(*ValidatorConfig)) *Validator {
	tb.Helper()
	cfg := DefaultValidatorConfig(testNetwork)
	if mutate != nil {
		mutate(&cfg)
	}
	v, err := NewValidator(cfg)
	if err != nil {
		tb.Fatalf("NewValidator: %v", err)
	}
	return v
}

package gossip

import (
	"bytes"
	"testing"

	"github.com/bitmesh/bitmesh/identity"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"
)

// benchEnvelopes seals n distinct envelopes with ~64-byte payloads by one
// key, timestamped testNow.
func benchEnvelopes(b *testing.B, n int) (raws [][]byte, ids []ID, sigs []identity.Signature, key *identity.PrivateKey) {
	b.Helper()
	key = testKey(b, 1)
	for i := range n {
		raw, e := seal(b, key, func(e *Envelope) {
			e.Seq = uint64(i)
			e.Payload = bytes.Repeat([]byte{'x'}, 64)
		})
		id, _ := e.ID()
		raws, ids, sigs = append(raws, raw), append(ids, id), append(sigs, e.Signature)
	}
	return raws, ids, sigs, key
}

// BenchmarkValidateFresh is the full pipeline on envelopes never seen
// before: every call is a cache miss with a real signature check.
func BenchmarkValidateFresh(b *testing.B) {
	raws, _, _, _ := benchEnvelopes(b, 1024)
	v := newTestValidator(b, func(c *ValidatorConfig) { c.SeenCacheSize = 1 })
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if r := v.Validate(testNow, "sensors/temp", raws[i%len(raws)]); r.Verdict != Accept || r.Cached {
			b.Fatalf("verdict %v cached %v: %v", r.Verdict, r.Cached, r.Err)
		}
		i++
	}
}

// BenchmarkSchnorrVerifyRaw is the floor under BenchmarkValidateFresh:
// btcec's BIP-340 verification of the same IDs and signatures with the
// public key parsed once.
func BenchmarkSchnorrVerifyRaw(b *testing.B) {
	_, ids, sigs, key := benchEnvelopes(b, 1024)
	id := key.DeviceID()
	pk, err := schnorr.ParsePubKey(id[:])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		j := i % len(ids)
		sig, err := schnorr.ParseSignature(sigs[j][:])
		if err != nil {
			b.Fatal(err)
		}
		if !sig.Verify(ids[j][:], pk) {
			b.Fatal("signature does not verify")
		}
		i++
	}
}

// BenchmarkIdentityVerifyBIP340 is what the validator calls: it lifts the
// x-only key on every call.
func BenchmarkIdentityVerifyBIP340(b *testing.B) {
	_, ids, sigs, key := benchEnvelopes(b, 1024)
	sender := key.DeviceID()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		j := i % len(ids)
		if err := identity.VerifyBIP340(sender, ids[j], sigs[j]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkParsePubKey is one x-only key lift (a field square root).
func BenchmarkParsePubKey(b *testing.B) {
	id := testKey(b, 1).DeviceID()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := schnorr.ParsePubKey(id[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateDuplicate is a replay: answered from the seen cache.
func BenchmarkValidateDuplicate(b *testing.B) {
	raw, _ := seal(b, testKey(b, 1), func(e *Envelope) { e.Payload = bytes.Repeat([]byte{'x'}, 64) })
	v := newTestValidator(b, nil)
	if r := v.Validate(testNow, "sensors/temp", raw); r.Verdict != Accept {
		b.Fatal(r.Err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := v.Validate(testNow, "sensors/temp", raw); !r.Cached {
			b.Fatal("not cached")
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	raw, _ := seal(b, testKey(b, 1), func(e *Envelope) { e.Payload = bytes.Repeat([]byte{'x'}, 64) })
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMessageID hashes a 2 KiB envelope, as GossipSub does for every
// message it receives.
func BenchmarkMessageID(b *testing.B) {
	raw, _ := seal(b, testKey(b, 1), func(e *Envelope) {
		e.Payload = nil
		e.Payload = make([]byte, 2048-e.EncodedSize())
	})
	if len(raw) != 2048 {
		b.Fatalf("envelope is %d bytes", len(raw))
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		_ = MessageID(raw)
	}
}

func BenchmarkSeal(b *testing.B) {
	key := testKey(b, 1)
	e := baseEnvelope()
	e.Payload = bytes.Repeat([]byte{'x'}, 64)
	b.ReportAllocs()
	for b.Loop() {
		e.Seq++
		if _, _, err := e.Seal(key); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealVerifyingEachSignature is Seal as it was before signing
// stopped verifying every signature (identity.SignBIP340 always
// verifies): compare with BenchmarkSeal in the same run.
func BenchmarkSealVerifyingEachSignature(b *testing.B) {
	key := testKey(b, 1)
	e := baseEnvelope()
	e.Payload = bytes.Repeat([]byte{'x'}, 64)
	e.Sender = key.DeviceID()
	b.ReportAllocs()
	for b.Loop() {
		e.Seq++
		id, err := e.ID()
		if err != nil {
			b.Fatal(err)
		}
		if e.Signature, err = identity.SignBIP340(key, id, [32]byte{byte(e.Seq)}); err != nil {
			b.Fatal(err)
		}
		if _, err := e.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}

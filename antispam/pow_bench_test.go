package antispam

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/bitmesh/bitmesh/gossip"
)

// benchMiner prepares the miner for powEnvelope (topic "sensors/temp",
// 16-byte payload): 95 unsigned bytes after the 64-byte tag prefix, so the
// midstate covers 128 of the 151 bytes before the nonce and an attempt
// compresses one block holding the other 23, the nonce and the padding.
func benchMiner(b *testing.B) *idMiner {
	b.Helper()
	e := powEnvelope(powKey(b, 1).DeviceID())
	e.PoWTarget = 20
	unsigned, err := e.AppendUnsigned(nil)
	if err != nil {
		b.Fatal(err)
	}
	m := newIDMiner(unsigned)
	if !m.fast {
		b.Fatal("fast path disabled")
	}
	return m
}

func reportRate(b *testing.B, attempts uint64) {
	b.ReportMetric(float64(attempts)/b.Elapsed().Seconds(), "attempts/s")
}

// BenchmarkMintAttempt is the miner's inner loop on one worker: restore the
// midstate, compress the final block with the nonce, read the digest and
// count its leading zero bits.
func BenchmarkMintAttempt(b *testing.B) {
	w := benchMiner(b).newWorker()
	b.ReportAllocs()
	var nonce uint64
	sink := 0
	for b.Loop() {
		sink += w.leadingZeroBits(nonce)
		nonce++
	}
	reportRate(b, uint64(b.N))
	if sink < 0 {
		b.Fatal(sink)
	}
}

// BenchmarkRawSHA256Tail is the floor under BenchmarkMintAttempt:
// sha256.Sum256 over a buffer as long as the bytes an attempt hashes after
// the midstate (23 + 8 nonce = 31 bytes), which SHA-256 pads to the same one
// block. Compressions against compressions, both with the nonce varied.
func BenchmarkRawSHA256Tail(b *testing.B) {
	m := benchMiner(b)
	buf := make([]byte, m.nonceAt+nonceSize)
	copy(buf, m.tail)
	if blocks := (len(buf) + 9 + 63) / 64; blocks != len(m.tail)/64 {
		b.Fatalf("raw hash compresses %d blocks, an attempt %d", blocks, len(m.tail)/64)
	}
	b.ReportAllocs()
	var nonce uint64
	sink := byte(0)
	for b.Loop() {
		binary.BigEndian.PutUint64(buf[m.nonceAt:], nonce)
		sum := sha256.Sum256(buf)
		sink += sum[0]
		nonce++
	}
	reportRate(b, uint64(b.N))
	_ = sink
}

// BenchmarkMint mints target-12 envelopes (4096 attempts expected), each
// with a new Seq so every search is fresh, reporting the hash rate of all
// workers together (their overshoot after the winner included) and the
// wall time per mint.
func BenchmarkMint(b *testing.B) {
	const target = 12
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			e := powEnvelope(powKey(b, 1).DeviceID())
			b.ReportAllocs()
			var attempts uint64
			for b.Loop() {
				e.Seq++
				e.PoWNonce = 0
				n, err := mint(context.Background(), e, target, workers)
				if err != nil {
					b.Fatal(err)
				}
				attempts += n
			}
			reportRate(b, attempts)
			b.ReportMetric(float64(attempts)/float64(b.N), "attempts/op")
		})
	}
}

// BenchmarkVerifyProofOfWork is what checking an envelope's work costs a
// receiver: hashing the envelope to its ID (which validation needs anyway,
// as the message ID) and one comparison. Compare with
// BenchmarkSchnorrVerifyReference: the work check is what spares a node the
// signature check of a spam envelope.
func BenchmarkVerifyProofOfWork(b *testing.B) {
	key := powKey(b, 1)
	e := powEnvelope(key.DeviceID())
	if err := MintProofOfWork(context.Background(), e, 8, 1); err != nil {
		b.Fatal(err)
	}
	raw, _, err := e.Seal(key)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !VerifyProofOfWork(gossip.MessageID(raw), 8) {
			b.Fatal("minted envelope fails its target")
		}
	}
}

package ots

import (
	"os"
	"testing"

	"github.com/bitmesh/bitmesh/anchor"
)

func BenchmarkVerifyOTSAnchor(b *testing.B) {
	raw, err := os.ReadFile("testdata/ots-vector.ots")
	if err != nil {
		b.Fatal(err)
	}
	f, err := ParseFile(raw)
	if err != nil {
		b.Fatal(err)
	}
	p := anchor.AnchorProof{Kind: anchor.KindOpenTimestamps, Digest: f.Digest, Proof: raw}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := anchor.VerifyAnchor(p); err != nil {
			b.Fatal(err)
		}
	}
}

package lightning

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/identity"
)

// BenchmarkCredentialCheck is what a seller does per request before it
// meters and serves: decode the macaroon, check its HMAC chain under the
// token's root key, sha256(preimage) against the payment hash, and the
// caveats. BenchmarkVerifyBIP340 is one BIP-340 verification (what every
// node does per envelope), side by side in the same run:
//
//	go test ./lightning -run '^$' -bench 'CredentialCheck|VerifyBIP340' -count 5
func BenchmarkCredentialCheck(b *testing.B) {
	now := time.Unix(1_800_000_000, 0)
	net := NewInProcessNetwork(func() time.Time { return now })
	s, _ := testSeller(b, net)
	buyer, err := identity.Generate()
	if err != nil {
		b.Fatal(err)
	}
	tok, inv, err := s.challenge(context.Background(), now, buyer.DeviceID(), "certify", 100)
	if err != nil {
		b.Fatal(err)
	}
	pre, err := net.Backend(1<<40).Pay(context.Background(), inv.PaymentRequest, 0)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := tok.Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.minter.verify(now, raw, pre, "certify", buyer.DeviceID()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyBIP340(b *testing.B) {
	key, err := identity.Generate()
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.Sum256([]byte("bench"))
	sig, err := key.SignHash(h)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := identity.VerifyBIP340(key.DeviceID(), h, sig); err != nil {
			b.Fatal(err)
		}
	}
}

package lightning

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/identity"
)

// tokenVector is PROTOCOL.md §19.7's test vector.
type tokenVector struct {
	SellerKey   string `json:"seller_private_key"` // after §11's even-Y normalisation
	Buyer       string `json:"buyer"`
	TokenID     string `json:"token_id"`
	Preimage    string `json:"preimage"`
	PaymentHash string `json:"payment_hash"`
	Service     string `json:"service"`
	Units       uint64 `json:"units"`
	Expires     int64  `json:"expires"`
	RootKey     string `json:"root_key"`
	Token       string `json:"token"` // macaroon v2 binary, hex
}

// TestTokenVector recomputes the vector in testdata/token-vector.json:
// the root key from the seller's key and the token ID, and the token's
// bytes, which an independent implementation must reproduce and verify.
// BITMESH_WRITE_VECTORS=1 rewrites the file.
func TestTokenVector(t *testing.T) {
	seller, err := identity.PrivateKeyFromBytes(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	buyer, err := identity.PrivateKeyFromBytes(bytes.Repeat([]byte{4}, 32))
	if err != nil {
		t.Fatal(err)
	}
	var id, pre [32]byte
	copy(id[:], bytes.Repeat([]byte{2}, 32))
	copy(pre[:], bytes.Repeat([]byte{1}, 32))
	hash := sha256.Sum256(pre[:])
	m := newMinter(seller)
	g := Grant{Service: "certify", Units: 5, Expires: time.Unix(1_800_000_000, 0), Buyer: buyer.DeviceID()}
	tok, err := m.mint(hash, id, g)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := tok.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got := tokenVector{
		SellerKey: hex.EncodeToString(seller.Bytes()), Buyer: buyer.DeviceID().String(),
		TokenID: hex.EncodeToString(id[:]), Preimage: hex.EncodeToString(pre[:]), PaymentHash: hex.EncodeToString(hash[:]),
		Service: g.Service, Units: g.Units, Expires: g.Expires.Unix(),
		RootKey: hex.EncodeToString(m.rootKey(id)), Token: hex.EncodeToString(raw),
	}
	path := filepath.Join("testdata", "token-vector.json")
	if os.Getenv("BITMESH_WRITE_VECTORS") == "1" {
		b, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want tokenVector
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("vector changed:\n got %+v\nwant %+v", got, want)
	}
	// And the vector's token verifies as §19.3 says, one second before it
	// expires, and not at its expiry.
	if _, err := m.verify(g.Expires.Add(-time.Second), raw, pre, "certify", buyer.DeviceID()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.verify(g.Expires, raw, pre, "certify", buyer.DeviceID()); err == nil {
		t.Fatal("the vector's token verified at its expiry")
	}
}

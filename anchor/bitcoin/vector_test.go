package bitcoin

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/anchor"
)

// bitcoinVectorFile holds a complete proof made by a real btcd on simnet
// (TestAnchorOnSimnet with BITMESH_WRITE_BITCOIN_VECTOR=1 rewrites
// it). PROTOCOL.md §18.2 quotes it as the test vector.
const bitcoinVectorFile = "testdata/bitcoin-vector.json"

type bitcoinVector struct {
	Checkpoint  string `json:"checkpoint"` // the checkpoint body, c.Marshal()
	Digest      string `json:"digest"`     // anchor.AnchorDigest, hex
	Proof       string `json:"proof"`      // anchor.AnchorProof.Proof, hex
	BlockHash   string `json:"block_hash"` // display order, hex
	BlockHeight int64  `json:"block_height"`
	MerkleRoot  string `json:"merkle_root"` // internal byte order, hex
	BlockTime   string `json:"block_time"`  // RFC 3339, UTC
}

func writeBitcoinVector(t *testing.T, c anchor.Checkpoint, p anchor.AnchorProof, at anchor.AnchorAttestation) {
	t.Helper()
	v := bitcoinVector{
		Checkpoint:  string(c.Marshal()),
		Digest:      hex.EncodeToString(p.Digest[:]),
		Proof:       hex.EncodeToString(p.Proof),
		BlockHash:   hex.EncodeToString(at.BlockHash[:]),
		BlockHeight: at.BlockHeight,
		MerkleRoot:  hex.EncodeToString(at.MerkleRoot[:]),
		BlockTime:   at.BlockTime.UTC().Format(time.RFC3339),
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bitcoinVectorFile, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVector(t *testing.T) {
	raw, err := os.ReadFile(bitcoinVectorFile)
	if err != nil {
		t.Fatal(err)
	}
	var v bitcoinVector
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	c, err := anchor.ParseCheckpoint([]byte(v.Checkpoint))
	if err != nil {
		t.Fatal(err)
	}
	digest := anchor.AnchorDigest(c)
	if hex.EncodeToString(digest[:]) != v.Digest {
		t.Fatalf("digest %x, vector says %s", digest, v.Digest)
	}
	proof, err := hex.DecodeString(v.Proof)
	if err != nil {
		t.Fatal(err)
	}
	at, err := anchor.VerifyAnchor(anchor.AnchorProof{Kind: anchor.KindBitcoinOpReturn, Digest: digest, Proof: proof})
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(at.BlockHash[:]); got != v.BlockHash {
		t.Errorf("block hash %s, want %s", got, v.BlockHash)
	}
	if got := hex.EncodeToString(at.MerkleRoot[:]); got != v.MerkleRoot {
		t.Errorf("merkle root %s, want %s", got, v.MerkleRoot)
	}
	if at.BlockHeight != v.BlockHeight || at.BlockTime.UTC().Format(time.RFC3339) != v.BlockTime || at.Kind != anchor.KindBitcoinOpReturn || at.Digest != digest {
		t.Errorf("attestation %+v, vector %+v", at, v)
	}
	// The same proof for another digest, or cut short, is refused.
	if _, err := anchor.VerifyAnchor(anchor.AnchorProof{Kind: anchor.KindBitcoinOpReturn, Digest: [32]byte{1}, Proof: proof}); !errors.Is(err, anchor.ErrAnchorInvalid) {
		t.Errorf("other digest: %v", err)
	}
	if _, err := anchor.VerifyAnchor(anchor.AnchorProof{Kind: anchor.KindBitcoinOpReturn, Digest: digest, Proof: proof[:len(proof)-1]}); !errors.Is(err, anchor.ErrAnchorInvalid) {
		t.Errorf("truncated: %v", err)
	}
}

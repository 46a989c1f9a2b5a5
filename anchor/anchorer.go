package anchor

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"
)

// Anchor kinds: the ways a checkpoint can be timestamped publicly. Each
// kind's proof format is specified in PROTOCOL.md §18.
const (
	// KindBitcoinOpReturn: the digest sits in an OP_RETURN output of a
	// Bitcoin transaction; the proof is the transaction, its Merkle path and
	// the block header (bitcoin.go).
	KindBitcoinOpReturn = "bitcoin-opreturn"
	// KindOpenTimestamps: the proof is a standard OpenTimestamps .ots file
	// for the checkpoint body (ots.go).
	KindOpenTimestamps = "opentimestamps"
)

// MaxAnchorProofSize bounds one anchor proof's bytes. A Bitcoin transaction
// with a Merkle path and header, or an .ots file with a few attestations,
// is a few KiB; 64 KiB leaves room and bounds a receipt.
const MaxAnchorProofSize = 64 << 10

// Anchorer timestamps checkpoints in a public system such as Bitcoin, so
// that a log's past can be dated by anyone without trusting the log or its
// witnesses. Implementations are safe for concurrent access.
type Anchorer interface {
	// Kind is one of the Kind constants.
	Kind() string
	// Anchor commits AnchorDigest(c) and returns its proof, which may be
	// Pending until the commitment is confirmed.
	Anchor(ctx context.Context, c Checkpoint) (AnchorProof, error)
	// Upgrade tries to complete a pending proof. It returns the proof
	// unchanged and an error wrapping ErrAnchorPending while confirmation
	// has not happened yet.
	Upgrade(ctx context.Context, p AnchorProof) (AnchorProof, error)
}

// AnchorProof proves that Digest was committed by a public timestamping
// system. It is self-contained: VerifyAnchor checks it offline.
type AnchorProof struct {
	Kind    string   // one of the Kind constants
	Digest  [32]byte // AnchorDigest of the anchored checkpoint
	Pending bool     // submitted, but not yet confirmed in a block
	Proof   []byte   // the kind's proof encoding (PROTOCOL.md §18)
}

// AnchorAttestation is what a complete anchor proof establishes offline:
// that Digest is committed in the block with the given header fields. That
// the block is in the Bitcoin best chain is for the verifier to check
// against a node or block explorer of its choice; offline, the header's
// proof of work is what stands behind it.
type AnchorAttestation struct {
	Kind        string
	Digest      [32]byte
	BlockHash   [32]byte  // in Bitcoin's display (big-endian) order; zero if the proof names only a height
	BlockHeight int64     // -1 if the proof does not state it
	MerkleRoot  [32]byte  // the block header's Merkle root the proof leads to, internal byte order
	BlockTime   time.Time // zero if the proof carries no header
	// Bits is the header's nBits: the proof of work offline verification
	// checked against, which the header itself chose. 0x207fffff (regtest,
	// simnet) costs nothing to forge; only a lookup of BlockHash in a node
	// the reader trusts makes the attestation count.
	Bits uint32
}

// AnchorDigest is what an anchor commits: SHA-256 of the checkpoint body
// (c.Marshal()). A plain hash of the body, not a tagged one, so standard
// tools check it: `ots verify` on a file holding the body, or sha256sum.
// The body names the log's origin, size and root, so the digest commits to
// the whole log up to that size.
func AnchorDigest(c Checkpoint) [32]byte { return sha256.Sum256(c.Marshal()) }

// VerifyAnchor checks an anchor proof offline and returns what it attests.
// A pending proof is checked as far as it goes and returns an error
// wrapping ErrAnchorPending.
func VerifyAnchor(p AnchorProof) (AnchorAttestation, error) {
	if len(p.Proof) > MaxAnchorProofSize {
		return AnchorAttestation{}, fmt.Errorf("%w: proof of %d bytes exceeds %d", ErrAnchorInvalid, len(p.Proof), MaxAnchorProofSize)
	}
	switch p.Kind {
	case KindBitcoinOpReturn:
		return verifyBitcoinAnchor(p)
	case KindOpenTimestamps:
		return verifyOTSAnchor(p)
	default:
		return AnchorAttestation{}, fmt.Errorf("%w: %q", ErrUnknownAnchorKind, p.Kind)
	}
}

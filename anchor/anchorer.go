package anchor

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"
)

// Anchor kinds: the ways a checkpoint can be timestamped publicly. Each
// kind's proof format is specified in PROTOCOL.md §18, and each is
// implemented, and its verifier registered, by its own package.
const (
	// KindBitcoinOpReturn: the digest sits in an OP_RETURN output of a
	// Bitcoin transaction; the proof is the transaction, its Merkle path and
	// the block header (package anchor/bitcoin).
	KindBitcoinOpReturn = "bitcoin-opreturn"
	// KindOpenTimestamps: the proof is a standard OpenTimestamps .ots file
	// for the checkpoint body (package anchor/ots).
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
//
// The check itself is the verifier registered for p.Kind with
// RegisterAnchorKind: a program links one in by importing the kind's
// package (anchor/bitcoin, anchor/ots). A proof of a kind without a
// verifier is refused, never waved through: the error is an
// *UnknownAnchorKindError, which wraps ErrUnknownAnchorKind and names the
// package to import.
func VerifyAnchor(p AnchorProof) (AnchorAttestation, error) {
	if len(p.Proof) > MaxAnchorProofSize {
		return AnchorAttestation{}, fmt.Errorf("%w: proof of %d bytes exceeds %d", ErrAnchorInvalid, len(p.Proof), MaxAnchorProofSize)
	}
	verifiers.RLock()
	verify := verifiers.m[p.Kind]
	verifiers.RUnlock()
	if verify == nil {
		return AnchorAttestation{}, &UnknownAnchorKindError{Kind: p.Kind}
	}
	return verify(p)
}

// verifiers maps each registered anchor kind to its offline verifier.
var verifiers struct {
	sync.RWMutex
	m map[string]func(AnchorProof) (AnchorAttestation, error)
}

// RegisterAnchorKind makes VerifyAnchor (and so VerifyReceipt) check proofs
// of kind with verify. It is meant for the init function of the package
// that implements the kind, as crypto.RegisterHash and image.RegisterFormat
// are: anchor/bitcoin registers KindBitcoinOpReturn, anchor/ots
// KindOpenTimestamps, so importing one of them, even as
// `import _ "github.com/bitmesh/bitmesh/anchor/ots"`, is what lets a
// program verify that kind.
//
// verify receives proofs no larger than MaxAnchorProofSize and must fail
// with an error wrapping ErrAnchorInvalid for a proof that does not hold,
// or ErrAnchorPending for one not yet confirmed. It must be safe for
// concurrent use. RegisterAnchorKind panics if kind is empty, verify is
// nil, or kind already has a verifier: two packages claiming one kind is a
// programming error, and letting the later one win would make what a
// proof means depend on import order. It is safe for concurrent use.
func RegisterAnchorKind(kind string, verify func(AnchorProof) (AnchorAttestation, error)) {
	if kind == "" || verify == nil {
		panic("anchor: RegisterAnchorKind needs a kind and a verifier")
	}
	verifiers.Lock()
	defer verifiers.Unlock()
	if _, dup := verifiers.m[kind]; dup {
		panic(fmt.Sprintf("anchor: RegisterAnchorKind called twice for kind %q", kind))
	}
	if verifiers.m == nil {
		verifiers.m = make(map[string]func(AnchorProof) (AnchorAttestation, error))
	}
	verifiers.m[kind] = verify
}

// kindPackages names, for the kinds this module implements, the package
// whose import registers the kind's verifier.
var kindPackages = map[string]string{
	KindBitcoinOpReturn: "github.com/bitmesh/bitmesh/anchor/bitcoin",
	KindOpenTimestamps:  "github.com/bitmesh/bitmesh/anchor/ots",
}

// UnknownAnchorKindError is VerifyAnchor's error for a proof of a kind no
// verifier is registered for: a kind this version does not know, or one
// whose package the program does not import. It wraps
// ErrUnknownAnchorKind.
type UnknownAnchorKindError struct {
	Kind string // the proof's kind
}

func (e *UnknownAnchorKindError) Error() string {
	if pkg, ok := kindPackages[e.Kind]; ok {
		return fmt.Sprintf("anchor: no verifier for kind %q (import %s)", e.Kind, pkg)
	}
	return fmt.Sprintf("anchor: no verifier for kind %q (unknown anchor kind)", e.Kind)
}

// Unwrap returns ErrUnknownAnchorKind.
func (e *UnknownAnchorKindError) Unwrap() error { return ErrUnknownAnchorKind }

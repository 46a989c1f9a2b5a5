package anchor

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
)

const (
	// MaxReceiptSize bounds a receipt's JSON encoding. An envelope is at most
	// gossip.MaxEnvelopeSize; base64 grows it by a third.
	MaxReceiptSize = 2 << 20
	// MaxProofLen bounds an inclusion proof: 64 hashes cover any tree of up
	// to 2^64 leaves.
	MaxProofLen = 64
	// MaxReceiptAnchors bounds the anchor proofs in one receipt.
	MaxReceiptAnchors = 8
)

// Receipt proves, offline, that one envelope was logged: the envelope, its
// leaf index, an inclusion proof and the signed (and cosigned) checkpoint
// the proof leads to. A receipt is a user-facing file; see MarshalReceipt.
type Receipt struct {
	Envelope   []byte     // canonical gossip envelope encoding: the leaf data
	LeafIndex  uint64     // position of the envelope in the log
	Proof      [][32]byte // RFC 6962 inclusion proof, leaf to root
	Checkpoint []byte     // signed checkpoint note, with cosignatures
	// Anchors timestamp the checkpoint publicly (Bitcoin, OpenTimestamps);
	// each commits AnchorDigest of the checkpoint's body. Optional.
	Anchors []AnchorProof
}

// receiptJSON is the wire form. Field order is the canonical order.
type receiptJSON struct {
	Envelope   string       `json:"envelope"`   // standard base64
	LeafIndex  uint64       `json:"leaf_index"` // decimal
	Proof      []string     `json:"proof"`      // lowercase hex, 64 characters each
	Checkpoint string       `json:"checkpoint"` // the signed note text
	Anchors    []anchorJSON `json:"anchors,omitempty"`
}

// anchorJSON is the wire form of an AnchorProof. Field order is canonical.
type anchorJSON struct {
	Kind    string `json:"kind"`
	Digest  string `json:"digest"`            // lowercase hex
	Pending bool   `json:"pending,omitempty"` // absent when confirmed
	Proof   string `json:"proof"`             // standard base64
}

// checkBounds reports receipt fields that no valid receipt can have.
func (r Receipt) checkBounds() error {
	if len(r.Envelope) > gossip.MaxEnvelopeSize {
		return fmt.Errorf("%w: envelope of %d bytes exceeds %d", ErrReceiptMalformed, len(r.Envelope), gossip.MaxEnvelopeSize)
	}
	if len(r.Proof) > MaxProofLen {
		return fmt.Errorf("%w: proof of %d hashes exceeds %d", ErrReceiptMalformed, len(r.Proof), MaxProofLen)
	}
	if len(r.Checkpoint) > MaxSignedCheckpointSize {
		return fmt.Errorf("%w: checkpoint of %d bytes exceeds %d", ErrReceiptMalformed, len(r.Checkpoint), MaxSignedCheckpointSize)
	}
	if !utf8.Valid(r.Checkpoint) {
		return fmt.Errorf("%w: checkpoint is not UTF-8", ErrReceiptMalformed)
	}
	if len(r.Anchors) > MaxReceiptAnchors {
		return fmt.Errorf("%w: %d anchors exceed %d", ErrReceiptMalformed, len(r.Anchors), MaxReceiptAnchors)
	}
	for i, a := range r.Anchors {
		if len(a.Proof) > MaxAnchorProofSize {
			return fmt.Errorf("%w: anchor %d proof of %d bytes exceeds %d", ErrReceiptMalformed, i, len(a.Proof), MaxAnchorProofSize)
		}
		if a.Kind == "" || !utf8.ValidString(a.Kind) || len(a.Kind) > 64 {
			return fmt.Errorf("%w: anchor %d has a bad kind", ErrReceiptMalformed, i)
		}
	}
	return nil
}

// MarshalReceipt returns the canonical encoding: compact JSON with the
// fields in schema order, followed by a newline.
func MarshalReceipt(r Receipt) ([]byte, error) {
	if err := r.checkBounds(); err != nil {
		return nil, err
	}
	j := receiptJSON{
		Envelope:   base64.StdEncoding.EncodeToString(r.Envelope),
		LeafIndex:  r.LeafIndex,
		Proof:      make([]string, len(r.Proof)),
		Checkpoint: string(r.Checkpoint),
	}
	for i, h := range r.Proof {
		j.Proof[i] = hex.EncodeToString(h[:])
	}
	for _, a := range r.Anchors {
		j.Anchors = append(j.Anchors, anchorJSON{
			Kind:    a.Kind,
			Digest:  hex.EncodeToString(a.Digest[:]),
			Pending: a.Pending,
			Proof:   base64.StdEncoding.EncodeToString(a.Proof),
		})
	}
	b, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReceiptMalformed, err)
	}
	return append(b, '\n'), nil
}

// ParseReceipt parses a canonical receipt encoding. Unknown, missing or
// repeated fields, other spellings and trailing data are rejected: what it
// accepts, MarshalReceipt reproduces byte for byte. It does not verify.
func ParseReceipt(b []byte) (Receipt, error) {
	if len(b) > MaxReceiptSize {
		return Receipt{}, fmt.Errorf("%w: %d bytes exceeds %d", ErrReceiptMalformed, len(b), MaxReceiptSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var j receiptJSON
	if err := dec.Decode(&j); err != nil {
		return Receipt{}, fmt.Errorf("%w: %v", ErrReceiptMalformed, err)
	}
	if len(j.Proof) > MaxProofLen {
		return Receipt{}, fmt.Errorf("%w: proof of %d hashes exceeds %d", ErrReceiptMalformed, len(j.Proof), MaxProofLen)
	}
	if len(j.Anchors) > MaxReceiptAnchors {
		return Receipt{}, fmt.Errorf("%w: %d anchors exceed %d", ErrReceiptMalformed, len(j.Anchors), MaxReceiptAnchors)
	}
	env, err := base64.StdEncoding.Strict().DecodeString(j.Envelope)
	if err != nil {
		return Receipt{}, fmt.Errorf("%w: envelope: %v", ErrReceiptMalformed, err)
	}
	r := Receipt{
		Envelope:   env,
		LeafIndex:  j.LeafIndex,
		Proof:      make([][32]byte, len(j.Proof)),
		Checkpoint: []byte(j.Checkpoint),
	}
	for i, s := range j.Proof {
		if len(s) != 2*len(r.Proof[i]) {
			return Receipt{}, fmt.Errorf("%w: proof hash %d has %d hex digits, want 64", ErrReceiptMalformed, i, len(s))
		}
		if _, err := hex.Decode(r.Proof[i][:], []byte(s)); err != nil {
			return Receipt{}, fmt.Errorf("%w: proof hash %d: %v", ErrReceiptMalformed, i, err)
		}
	}
	for i, a := range j.Anchors {
		p := AnchorProof{Kind: a.Kind, Pending: a.Pending}
		if len(a.Digest) != 2*len(p.Digest) {
			return Receipt{}, fmt.Errorf("%w: anchor %d digest has %d hex digits, want 64", ErrReceiptMalformed, i, len(a.Digest))
		}
		if _, err := hex.Decode(p.Digest[:], []byte(a.Digest)); err != nil {
			return Receipt{}, fmt.Errorf("%w: anchor %d digest: %v", ErrReceiptMalformed, i, err)
		}
		if p.Proof, err = base64.StdEncoding.Strict().DecodeString(a.Proof); err != nil {
			return Receipt{}, fmt.Errorf("%w: anchor %d proof: %v", ErrReceiptMalformed, i, err)
		}
		r.Anchors = append(r.Anchors, p)
	}
	canon, err := MarshalReceipt(r)
	if err != nil {
		return Receipt{}, err
	}
	if !bytes.Equal(canon, b) {
		return Receipt{}, fmt.Errorf("%w: not the canonical encoding", ErrReceiptMalformed)
	}
	return r, nil
}

// VerifyReceipt checks a receipt against a log key and origin, trusted
// witnesses and the number of them that must have cosigned, in the order of
// PROTOCOL.md §17.7, and returns the decoded envelope (its Payload aliases
// r.Envelope). It checks the sender's signature but neither the envelope's
// network, time nor proof of work: those are the caller's policy. Every
// anchor must commit this checkpoint's AnchorDigest and verify; a pending
// one is accepted as pending (call VerifyAnchor to see what each attests).
func VerifyReceipt(r Receipt, logKey identity.DeviceID, origin string, witnesses []identity.DeviceID, minCosigners int) (*gossip.Envelope, error) {
	if err := r.checkBounds(); err != nil {
		return nil, err
	}
	env, err := gossip.Decode(r.Envelope)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEnvelopeInvalid, err)
	}
	id := gossip.MessageID(r.Envelope)
	if err := identity.VerifyBIP340(env.Sender, [32]byte(id), env.Signature); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEnvelopeInvalid, err)
	}

	c, cosigners, err := VerifyCosignatures(r.Checkpoint, logKey, witnesses, origin)
	if err != nil {
		return nil, err
	}
	if len(cosigners) < minCosigners {
		return nil, fmt.Errorf("%w: %d of %d required", ErrNotEnoughCosignatures, len(cosigners), minCosigners)
	}

	if r.LeafIndex >= c.Size {
		return nil, fmt.Errorf("%w: leaf index %d outside tree of size %d", ErrInclusion, r.LeafIndex, c.Size)
	}
	hashes := make([][]byte, len(r.Proof))
	for i := range r.Proof {
		hashes[i] = r.Proof[i][:]
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(r.Envelope)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, r.LeafIndex, c.Size, leaf, hashes, c.Root[:]); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInclusion, err)
	}
	digest := AnchorDigest(c)
	for i, a := range r.Anchors {
		if a.Digest != digest {
			return nil, fmt.Errorf("%w: anchor %d commits %x, not this checkpoint", ErrAnchorInvalid, i, a.Digest)
		}
		if _, err := VerifyAnchor(a); err != nil && !errors.Is(err, ErrAnchorPending) {
			return nil, fmt.Errorf("anchor %d: %w", i, err)
		}
	}
	return env, nil
}

package ots

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	//lint:ignore SA1019 OpenTimestamps op 0x03 is RIPEMD-160: the format needs it
	"golang.org/x/crypto/ripemd160"
	"golang.org/x/crypto/sha3"

	"github.com/bitmesh/bitmesh/anchor"
)

// The OpenTimestamps detached-timestamp (.ots) file format, as the
// reference implementation (python-opentimestamps) writes it: a magic
// header, version 1, the file hash op (SHA-256 here), the file digest, and
// the timestamp tree (PROTOCOL.md §18.5).
var otsMagic = []byte("\x00OpenTimestamps\x00\x00Proof\x00\xbf\x89\xe2\xe8\x84\xe8\x92\x94")

const (
	otsVersion = 1

	otsAttestationTag = 0x00
	otsFork           = 0xff

	// Ops, by tag.
	OpSHA1      = 0x02
	OpRIPEMD160 = 0x03
	OpSHA256    = 0x08
	OpKeccak256 = 0x67
	OpAppend    = 0xf0
	OpPrepend   = 0xf1
	OpReverse   = 0xf2
	OpHexlify   = 0xf3

	otsMaxMsg     = 4096 // the reference's MAX_MSG_LENGTH and MAX_RESULT_LENGTH
	otsMaxPayload = 8192 // an attestation's payload
	otsMaxURI     = 1000
	otsMaxDepth   = 256 // the reference's recursion limit
	// MaxFileSize bounds the .ots files ParseFile reads: an anchor proof's
	// bound.
	MaxFileSize       = anchor.MaxAnchorProofSize
	otsURIAllowedChar = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._/:"
)

// Attestation tags.
var (
	PendingTag = [8]byte{0x83, 0xdf, 0xe3, 0x0d, 0x2e, 0xf9, 0x0c, 0x8e}
	BitcoinTag = [8]byte{0x05, 0x88, 0x96, 0x0d, 0x73, 0xd7, 0x19, 0x01}
)

// Op is one commitment operation: a tag and, for append and prepend,
// its argument.
type Op struct {
	Tag byte
	Arg []byte
}

// Attestation is a leaf of the tree: a tag and its payload (a calendar
// URI for pending, a block height for Bitcoin; others are kept as is).
type Attestation struct {
	Tag     [8]byte
	Payload []byte
}

// Timestamp is a node of the commitment tree: attestations of its
// message, and operations leading to further nodes.
type Timestamp struct {
	Attestations []Attestation
	Ops          []Branch
}

// Branch is an operation and the timestamp of its result.
type Branch struct {
	Op    Op
	Stamp *Timestamp
}

// File is a detached timestamp of a SHA-256 file digest.
type File struct {
	Digest    [32]byte
	Timestamp *Timestamp
}

// PendingAttestation returns an attestation that uri has the commitment.
func PendingAttestation(uri string) Attestation {
	return Attestation{Tag: PendingTag, Payload: appendVarBytes(nil, []byte(uri))}
}

// BitcoinAttestation returns an attestation that the message is the Merkle
// root of the Bitcoin block at height.
func BitcoinAttestation(height uint64) Attestation {
	return Attestation{Tag: BitcoinTag, Payload: appendVarUint(nil, height)}
}

func otsInvalid(format string, a ...any) error {
	return fmt.Errorf("%w: ots: %s", anchor.ErrAnchorInvalid, fmt.Sprintf(format, a...))
}

// Apply runs the op on msg, with the reference's length limits.
func (o Op) Apply(msg []byte) ([]byte, error) {
	if len(msg) > otsMaxMsg || (o.Tag == OpHexlify && len(msg) > otsMaxMsg/2) {
		return nil, otsInvalid("message of %d bytes too long for op %#x", len(msg), o.Tag)
	}
	var r []byte
	switch o.Tag {
	case OpAppend:
		r = append(append([]byte(nil), msg...), o.Arg...)
	case OpPrepend:
		r = append(append([]byte(nil), o.Arg...), msg...)
	case OpSHA256:
		h := sha256.Sum256(msg)
		r = h[:]
	case OpSHA1:
		h := sha1.Sum(msg)
		r = h[:]
	case OpRIPEMD160:
		h := ripemd160.New()
		h.Write(msg)
		r = h.Sum(nil)
	case OpKeccak256:
		h := sha3.NewLegacyKeccak256()
		h.Write(msg)
		r = h.Sum(nil)
	case OpReverse:
		if len(msg) == 0 {
			return nil, otsInvalid("reverse of an empty message")
		}
		r = slices.Clone(msg)
		slices.Reverse(r)
	case OpHexlify:
		if len(msg) == 0 {
			return nil, otsInvalid("hexlify of an empty message")
		}
		r = []byte(hex.EncodeToString(msg))
	default:
		return nil, otsInvalid("unknown op %#x", o.Tag)
	}
	if len(r) > otsMaxMsg {
		return nil, otsInvalid("result of %d bytes", len(r))
	}
	return r, nil
}

func binaryOp(tag byte) bool { return tag == OpAppend || tag == OpPrepend }

func knownOp(tag byte) bool {
	switch tag {
	case OpSHA1, OpRIPEMD160, OpSHA256, OpKeccak256, OpAppend, OpPrepend, OpReverse, OpHexlify:
		return true
	}
	return false
}

// lessOp orders ops as the reference does: by tag, then argument.
func lessOp(a, b Op) int {
	if a.Tag != b.Tag {
		return int(a.Tag) - int(b.Tag)
	}
	return bytes.Compare(a.Arg, b.Arg)
}

// compareAttestations orders attestations as the reference does: by tag;
// pending by URI, Bitcoin by height, others by payload.
func compareAttestations(a, b Attestation) int {
	if c := bytes.Compare(a.Tag[:], b.Tag[:]); c != 0 {
		return c
	}
	switch a.Tag {
	case PendingTag:
		ua, _ := a.pendingURI()
		ub, _ := b.pendingURI()
		return bytes.Compare([]byte(ua), []byte(ub))
	case BitcoinTag:
		ha, _ := a.bitcoinHeight()
		hb, _ := b.bitcoinHeight()
		switch {
		case ha < hb:
			return -1
		case ha > hb:
			return 1
		}
		return 0
	}
	return bytes.Compare(a.Payload, b.Payload)
}

func (a Attestation) pendingURI() (string, error) {
	r := otsReader{b: a.Payload}
	uri, err := r.varBytes(otsMaxURI)
	if err != nil || len(r.b) != 0 {
		return "", otsInvalid("pending attestation payload")
	}
	for _, c := range uri {
		if bytes.IndexByte([]byte(otsURIAllowedChar), c) < 0 {
			return "", otsInvalid("pending URI has character %q", c)
		}
	}
	return string(uri), nil
}

func (a Attestation) bitcoinHeight() (uint64, error) {
	r := otsReader{b: a.Payload}
	h, err := r.varUint()
	if err != nil || len(r.b) != 0 {
		return 0, otsInvalid("bitcoin attestation payload")
	}
	return h, nil
}

// Merge adds other's attestations and ops into t, as the reference's
// Timestamp.merge does, keeping t canonical (sorted, no duplicates).
func (t *Timestamp) Merge(other *Timestamp) {
	for _, a := range other.Attestations {
		if !slices.ContainsFunc(t.Attestations, func(b Attestation) bool { return compareAttestations(a, b) == 0 }) {
			t.Attestations = append(t.Attestations, a)
		}
	}
	slices.SortFunc(t.Attestations, compareAttestations)
	for _, br := range other.Ops {
		i := slices.IndexFunc(t.Ops, func(b Branch) bool { return lessOp(b.Op, br.Op) == 0 })
		if i >= 0 {
			t.Ops[i].Stamp.Merge(br.Stamp)
			continue
		}
		t.Ops = append(t.Ops, Branch{Op: br.Op, Stamp: &Timestamp{}})
		t.Ops[len(t.Ops)-1].Stamp.Merge(br.Stamp)
	}
	slices.SortFunc(t.Ops, func(a, b Branch) int { return lessOp(a.Op, b.Op) })
}

// appendTimestamp serializes t as the reference does: every attestation
// but the last after a fork marker, then the ops in order, all but the
// last after fork markers.
func appendTimestamp(b []byte, t *Timestamp) ([]byte, error) {
	if len(t.Attestations) == 0 && len(t.Ops) == 0 {
		return nil, otsInvalid("empty timestamp")
	}
	atts := slices.Clone(t.Attestations)
	slices.SortFunc(atts, compareAttestations)
	ops := slices.Clone(t.Ops)
	slices.SortFunc(ops, func(a, b Branch) int { return lessOp(a.Op, b.Op) })
	for i, a := range atts {
		if i < len(atts)-1 || len(ops) > 0 {
			b = append(b, otsFork)
		}
		b = append(b, otsAttestationTag)
		b = append(b, a.Tag[:]...)
		b = appendVarBytes(b, a.Payload)
	}
	for i, br := range ops {
		if i < len(ops)-1 {
			b = append(b, otsFork)
		}
		b = append(b, br.Op.Tag)
		if binaryOp(br.Op.Tag) {
			b = appendVarBytes(b, br.Op.Arg)
		}
		var err error
		if b, err = appendTimestamp(b, br.Stamp); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// MarshalTimestamp serializes a timestamp tree alone, as calendars send it.
func MarshalTimestamp(t *Timestamp) ([]byte, error) { return appendTimestamp(nil, t) }

// Marshal returns the .ots file bytes.
func (f File) Marshal() ([]byte, error) {
	b := slices.Clone(otsMagic)
	b = appendVarUint(b, otsVersion)
	b = append(b, OpSHA256)
	b = append(b, f.Digest[:]...)
	return appendTimestamp(b, f.Timestamp)
}

// ParseFile parses a .ots file whose file hash op is SHA-256.
func ParseFile(b []byte) (File, error) {
	if len(b) > MaxFileSize {
		return File{}, otsInvalid("file of %d bytes", len(b))
	}
	if !bytes.HasPrefix(b, otsMagic) {
		return File{}, otsInvalid("not an OpenTimestamps proof file")
	}
	r := otsReader{b: b[len(otsMagic):]}
	v, err := r.varUint()
	if err != nil || v != otsVersion {
		return File{}, otsInvalid("version %d", v)
	}
	op, err := r.byte()
	if err != nil || op != OpSHA256 {
		return File{}, otsInvalid("file hash op %#x, want SHA-256", op)
	}
	var f File
	d, err := r.bytes(32)
	if err != nil {
		return File{}, err
	}
	copy(f.Digest[:], d)
	if f.Timestamp, err = r.timestamp(otsMaxDepth); err != nil {
		return File{}, err
	}
	if len(r.b) != 0 {
		return File{}, otsInvalid("%d trailing bytes", len(r.b))
	}
	return f, nil
}

// ParseTimestamp parses a bare timestamp tree (a calendar's answer).
func ParseTimestamp(b []byte) (*Timestamp, error) {
	r := otsReader{b: b}
	t, err := r.timestamp(otsMaxDepth)
	if err != nil {
		return nil, err
	}
	if len(r.b) != 0 {
		return nil, otsInvalid("%d trailing bytes", len(r.b))
	}
	return t, nil
}

type otsReader struct{ b []byte }

func (r *otsReader) byte() (byte, error) {
	if len(r.b) == 0 {
		return 0, otsInvalid("truncated")
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, nil
}

func (r *otsReader) bytes(n int) ([]byte, error) {
	if n > len(r.b) {
		return nil, otsInvalid("truncated: want %d bytes, have %d", n, len(r.b))
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out, nil
}

// varUint reads LEB128, at most 9 bytes (63 bits).
func (r *otsReader) varUint() (uint64, error) {
	var v uint64
	for i := 0; i < 9; i++ {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, otsInvalid("varuint too long")
}

func (r *otsReader) varBytes(max int) ([]byte, error) {
	n, err := r.varUint()
	if err != nil {
		return nil, err
	}
	if n > uint64(max) {
		return nil, otsInvalid("%d bytes exceed %d", n, max)
	}
	return r.bytes(int(n))
}

func (r *otsReader) timestamp(depth int) (*Timestamp, error) {
	if depth == 0 {
		return nil, otsInvalid("tree deeper than %d", otsMaxDepth)
	}
	t := &Timestamp{}
	add := func(tag byte) error {
		if tag == otsAttestationTag {
			tb, err := r.bytes(8)
			if err != nil {
				return err
			}
			p, err := r.varBytes(otsMaxPayload)
			if err != nil {
				return err
			}
			a := Attestation{Payload: slices.Clone(p)}
			copy(a.Tag[:], tb)
			switch a.Tag {
			case PendingTag:
				_, err = a.pendingURI()
			case BitcoinTag:
				_, err = a.bitcoinHeight()
			}
			if err != nil {
				return err
			}
			t.Attestations = append(t.Attestations, a)
			return nil
		}
		if !knownOp(tag) {
			return otsInvalid("unknown op %#x", tag)
		}
		op := Op{Tag: tag}
		if binaryOp(tag) {
			arg, err := r.varBytes(otsMaxMsg)
			if err != nil {
				return err
			}
			if len(arg) == 0 {
				return otsInvalid("empty argument to op %#x", tag)
			}
			op.Arg = slices.Clone(arg)
		}
		sub, err := r.timestamp(depth - 1)
		if err != nil {
			return err
		}
		t.Ops = append(t.Ops, Branch{Op: op, Stamp: sub})
		return nil
	}
	tag, err := r.byte()
	if err != nil {
		return nil, err
	}
	for tag == otsFork {
		next, err := r.byte()
		if err != nil {
			return nil, err
		}
		if err := add(next); err != nil {
			return nil, err
		}
		if tag, err = r.byte(); err != nil {
			return nil, err
		}
	}
	if err := add(tag); err != nil {
		return nil, err
	}
	return t, nil
}

func appendVarUint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendVarBytes(b, p []byte) []byte { return append(appendVarUint(b, uint64(len(p))), p...) }

// Leaf is an attestation with the message it attests.
type Leaf struct {
	Msg         []byte
	Attestation Attestation
}

// visit calls f on every node of the tree with the message it commits to,
// parents before children, evaluating ops from msg on the way down.
func (t *Timestamp) visit(msg []byte, f func(t *Timestamp, msg []byte) error) error {
	if err := f(t, msg); err != nil {
		return err
	}
	for _, br := range t.Ops {
		r, err := br.Op.Apply(msg)
		if err != nil {
			return err
		}
		if err := br.Stamp.visit(r, f); err != nil {
			return err
		}
	}
	return nil
}

// Leaves evaluates the tree from msg and returns every attestation with
// its message.
func (t *Timestamp) Leaves(msg []byte) ([]Leaf, error) {
	var out []Leaf
	err := t.visit(msg, func(t *Timestamp, msg []byte) error {
		for _, a := range t.Attestations {
			out = append(out, Leaf{Msg: msg, Attestation: a})
		}
		return nil
	})
	return out, err
}

// Importing this package makes anchor.VerifyAnchor, and so
// anchor.VerifyReceipt, check proofs of kind anchor.KindOpenTimestamps.
func init() { anchor.RegisterAnchorKind(anchor.KindOpenTimestamps, verifyAnchor) }

// verifyAnchor checks an anchor.KindOpenTimestamps proof offline: the file
// timestamps p.Digest, and (if complete) its lowest Bitcoin attestation
// names the height and the Merkle root the block must have.
func verifyAnchor(p anchor.AnchorProof) (anchor.AnchorAttestation, error) {
	f, err := ParseFile(p.Proof)
	if err != nil {
		return anchor.AnchorAttestation{}, err
	}
	if f.Digest != p.Digest {
		return anchor.AnchorAttestation{}, otsInvalid("file digest %x, want %x", f.Digest, p.Digest)
	}
	leaves, err := f.Timestamp.Leaves(f.Digest[:])
	if err != nil {
		return anchor.AnchorAttestation{}, err
	}
	best := anchor.AnchorAttestation{BlockHeight: -1}
	var pending []string
	for _, l := range leaves {
		switch l.Attestation.Tag {
		case BitcoinTag:
			h, err := l.Attestation.bitcoinHeight()
			if err != nil {
				return anchor.AnchorAttestation{}, err
			}
			if len(l.Msg) != 32 {
				return anchor.AnchorAttestation{}, otsInvalid("bitcoin attestation of a %d-byte message", len(l.Msg))
			}
			if best.BlockHeight < 0 || int64(h) < best.BlockHeight {
				best = anchor.AnchorAttestation{Kind: anchor.KindOpenTimestamps, Digest: p.Digest, BlockHeight: int64(h)}
				copy(best.MerkleRoot[:], l.Msg)
			}
		case PendingTag:
			uri, _ := l.Attestation.pendingURI()
			pending = append(pending, uri)
		}
	}
	if best.BlockHeight < 0 {
		return anchor.AnchorAttestation{}, fmt.Errorf("%w: waiting on calendars %v", anchor.ErrAnchorPending, pending)
	}
	return best, nil
}

package anchor

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"

	"github.com/bitmesh/bitmesh/identity"
)

const (
	// MaxCheckpointSize bounds a checkpoint body (the note text). Real bodies
	// are about 100 bytes; the slack is for extension lines.
	MaxCheckpointSize = 4 << 10
	// MaxSignedCheckpointSize bounds a signed note: the body plus signature
	// lines (note.Open itself stops at 100 signatures).
	MaxSignedCheckpointSize = 16 << 10

	// cosignatureSize is the signature after the 4-byte key ID: an 8-byte
	// big-endian Unix time and a BIP-340 signature, as C2SP cosignature/v1.
	cosignatureSize = 8 + identity.SignatureSize
)

// Signature types per C2SP signed-note: 0xff ("no assigned byte") followed by
// an identifier unlikely to collide. They enter the key ID only; the two
// differ so that one key can be a log and a witness without ambiguity.
var (
	sigTypeCheckpoint  = []byte("\xffbitmesh/bip340-checkpoint")
	sigTypeCosignature = []byte("\xffbitmesh/bip340-cosignature/v1")
)

// Checkpoint is a C2SP tlog-checkpoint body: a commitment to the first Size
// leaves of an RFC 6962 Merkle tree with root Root.
type Checkpoint struct {
	Origin     string   // log identity; also the log's note key name
	Size       uint64   // number of leaves
	Root       [32]byte // RFC 6962 tree hash of the first Size leaves
	Extensions []string // opaque, non-empty lines; not recommended
}

// Marshal returns the note text: origin, decimal size and base64 root, then
// extension lines, each ending in a newline. It does not validate c; see
// Validate.
func (c Checkpoint) Marshal() []byte {
	b := make([]byte, 0, len(c.Origin)+70)
	b = append(b, c.Origin...)
	b = append(b, '\n')
	b = strconv.AppendUint(b, c.Size, 10)
	b = append(b, '\n')
	b = base64.StdEncoding.AppendEncode(b, c.Root[:])
	b = append(b, '\n')
	for _, e := range c.Extensions {
		b = append(b, e...)
		b = append(b, '\n')
	}
	return b
}

// Validate reports whether c marshals to a body ParseCheckpoint accepts.
func (c Checkpoint) Validate() error {
	if err := checkOrigin(c.Origin); err != nil {
		return err
	}
	for i, e := range c.Extensions {
		if e == "" {
			return fmt.Errorf("%w: extension line %d is empty", ErrCheckpointMalformed, i)
		}
		if !validNoteText(e) || strings.ContainsRune(e, '\n') {
			return fmt.Errorf("%w: extension line %d has control characters or invalid UTF-8", ErrCheckpointMalformed, i)
		}
	}
	if n := len(c.Marshal()); n > MaxCheckpointSize {
		return fmt.Errorf("%w: body of %d bytes exceeds %d", ErrCheckpointMalformed, n, MaxCheckpointSize)
	}
	return nil
}

// checkOrigin requires what the note format requires of a key name (the
// origin is the log's key name): non-empty UTF-8 without spaces, '+' or
// control characters. C2SP only recommends this; we require it.
func checkOrigin(origin string) error {
	if origin == "" {
		return fmt.Errorf("%w: empty origin", ErrCheckpointMalformed)
	}
	if !validNoteText(origin) || strings.IndexFunc(origin, unicode.IsSpace) >= 0 || strings.Contains(origin, "+") {
		return fmt.Errorf("%w: origin %q is not a valid note key name", ErrCheckpointMalformed, origin)
	}
	return nil
}

// validNoteText reports valid UTF-8 without ASCII controls but newline.
func validNoteText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 && s[i] != '\n' {
			return false
		}
	}
	return true
}

// ParseCheckpoint parses a checkpoint body strictly: what it accepts
// marshals back to the very same bytes.
func ParseCheckpoint(body []byte) (Checkpoint, error) {
	var c Checkpoint
	if len(body) > MaxCheckpointSize {
		return c, fmt.Errorf("%w: body of %d bytes exceeds %d", ErrCheckpointMalformed, len(body), MaxCheckpointSize)
	}
	if len(body) == 0 || body[len(body)-1] != '\n' {
		return c, fmt.Errorf("%w: body does not end in a newline", ErrCheckpointMalformed)
	}
	lines := strings.Split(string(body[:len(body)-1]), "\n")
	if len(lines) < 3 {
		return c, fmt.Errorf("%w: %d lines, want at least 3", ErrCheckpointMalformed, len(lines))
	}
	c.Origin = lines[0]
	if err := checkOrigin(c.Origin); err != nil {
		return Checkpoint{}, err
	}
	size, err := parseCanonicalUint(lines[1])
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: tree size: %v", ErrCheckpointMalformed, err)
	}
	c.Size = size
	if len(lines[2]) != base64.StdEncoding.EncodedLen(len(c.Root)) {
		return Checkpoint{}, fmt.Errorf("%w: root hash line of %d characters, want %d", ErrCheckpointMalformed, len(lines[2]), base64.StdEncoding.EncodedLen(len(c.Root)))
	}
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != len(c.Root) {
		return Checkpoint{}, fmt.Errorf("%w: root hash is not 32 bytes of canonical base64", ErrCheckpointMalformed)
	}
	copy(c.Root[:], root)
	if len(lines) > 3 {
		c.Extensions = lines[3:]
	}
	if err := c.Validate(); err != nil {
		return Checkpoint{}, err
	}
	return c, nil
}

// parseCanonicalUint accepts ASCII decimal without sign or leading zeros.
func parseCanonicalUint(s string) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%q is not canonical decimal", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not canonical decimal", s)
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q overflows 64 bits", s)
	}
	return v, nil
}

// noteKeyID is the C2SP signed-note key ID: the first four bytes of
// SHA-256(name || 0x0A || signature type || 32-byte x-only key).
func noteKeyID(name string, sigType []byte, id identity.DeviceID) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n'})
	h.Write(sigType)
	h.Write(id[:])
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// WitnessName is a witness's note key name: its device ID's bech32 form.
func WitnessName(id identity.DeviceID) string { return id.String() }

// checkpointSigner signs note texts as a log: BIP-340 over
// identity.DomainCheckpoint.Hash(text).
type checkpointSigner struct {
	name string
	hash uint32
	key  *identity.PrivateKey
}

var (
	_ note.Signer   = (*checkpointSigner)(nil)
	_ note.Verifier = (*checkpointVerifier)(nil)
	_ note.Signer   = (*cosignatureSigner)(nil)
	_ note.Verifier = (*cosignatureVerifier)(nil)
)

// NewCheckpointSigner returns a note.Signer for the log named origin (the
// key name is the origin, as C2SP tlog-checkpoint recommends). It signs any
// note text; SignCheckpoint is the usual entry point.
func NewCheckpointSigner(origin string, key *identity.PrivateKey) (note.Signer, error) {
	if err := checkOrigin(origin); err != nil {
		return nil, err
	}
	return &checkpointSigner{name: origin, hash: noteKeyID(origin, sigTypeCheckpoint, key.DeviceID()), key: key}, nil
}

func (s *checkpointSigner) Name() string    { return s.name }
func (s *checkpointSigner) KeyHash() uint32 { return s.hash }
func (s *checkpointSigner) Sign(msg []byte) ([]byte, error) {
	sig, err := s.key.Sign(identity.DomainCheckpoint, msg)
	if err != nil {
		return nil, err
	}
	return sig[:], nil
}

// checkpointVerifier verifies checkpointSigner signatures.
type checkpointVerifier struct {
	name string
	hash uint32
	id   identity.DeviceID
}

// NewCheckpointVerifier returns the note.Verifier for the log named origin
// with key logKey.
func NewCheckpointVerifier(origin string, logKey identity.DeviceID) (note.Verifier, error) {
	if err := checkOrigin(origin); err != nil {
		return nil, err
	}
	return &checkpointVerifier{name: origin, hash: noteKeyID(origin, sigTypeCheckpoint, logKey), id: logKey}, nil
}

func (v *checkpointVerifier) Name() string    { return v.name }
func (v *checkpointVerifier) KeyHash() uint32 { return v.hash }
func (v *checkpointVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != identity.SignatureSize {
		return false
	}
	return v.id.Verify(identity.DomainCheckpoint, msg, identity.Signature(sig)) == nil
}

// cosignatureMessage is the C2SP cosignature/v1 signed message.
func cosignatureMessage(t uint64, body []byte) []byte {
	m := make([]byte, 0, 40+len(body))
	m = append(m, "cosignature/v1\ntime "...)
	m = strconv.AppendUint(m, t, 10)
	m = append(m, '\n')
	return append(m, body...)
}

// cosignatureSigner cosigns checkpoint bodies as a witness at a fixed time.
type cosignatureSigner struct {
	name string
	hash uint32
	key  *identity.PrivateKey
	time uint64
}

// NewCosignatureSigner returns a note.Signer that cosigns checkpoints as the
// witness key at time now (whole seconds). Its Sign refuses texts that are
// not checkpoint bodies, as a witness must.
func NewCosignatureSigner(key *identity.PrivateKey, now time.Time) (note.Signer, error) {
	if now.Unix() < 0 {
		return nil, fmt.Errorf("anchor: cosignature time %v is before 1970", now)
	}
	name := WitnessName(key.DeviceID())
	return &cosignatureSigner{name: name, hash: noteKeyID(name, sigTypeCosignature, key.DeviceID()), key: key, time: uint64(now.Unix())}, nil
}

func (s *cosignatureSigner) Name() string    { return s.name }
func (s *cosignatureSigner) KeyHash() uint32 { return s.hash }
func (s *cosignatureSigner) Sign(msg []byte) ([]byte, error) {
	if _, err := ParseCheckpoint(msg); err != nil {
		return nil, err
	}
	sig, err := s.key.Sign(identity.DomainCheckpoint, cosignatureMessage(s.time, msg))
	if err != nil {
		return nil, err
	}
	out := binary.BigEndian.AppendUint64(make([]byte, 0, cosignatureSize), s.time)
	return append(out, sig[:]...), nil
}

// cosignatureVerifier verifies cosignatureSigner signatures.
type cosignatureVerifier struct {
	name string
	hash uint32
	id   identity.DeviceID
}

// NewCosignatureVerifier returns the note.Verifier for witness id.
func NewCosignatureVerifier(id identity.DeviceID) note.Verifier {
	name := WitnessName(id)
	return &cosignatureVerifier{name: name, hash: noteKeyID(name, sigTypeCosignature, id), id: id}
}

func (v *cosignatureVerifier) Name() string    { return v.name }
func (v *cosignatureVerifier) KeyHash() uint32 { return v.hash }
func (v *cosignatureVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != cosignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	return v.id.Verify(identity.DomainCheckpoint, cosignatureMessage(t, msg), identity.Signature(sig[8:])) == nil
}

// SignCheckpoint returns c as a note signed by the log key.
func SignCheckpoint(c Checkpoint, key *identity.PrivateKey) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	s, err := NewCheckpointSigner(c.Origin, key)
	if err != nil {
		return nil, err
	}
	return note.Sign(&note.Note{Text: string(c.Marshal())}, s)
}

// OpenCheckpoint verifies the log's signature on a signed checkpoint and
// parses its body. Other signatures are ignored.
func OpenCheckpoint(msg []byte, logKey identity.DeviceID, origin string) (Checkpoint, error) {
	c, _, err := openCheckpoint(msg, logKey, origin, nil)
	return c, err
}

// Cosign appends witness's cosignature at time now to a signed checkpoint,
// replacing an earlier one by the same witness. It checks the body is a
// checkpoint but not the log's signature nor consistency with checkpoints
// seen before: a witness must do both (OpenCheckpoint, then a consistency
// proof from its last cosigned checkpoint) before calling Cosign.
func Cosign(signedCheckpoint []byte, witness *identity.PrivateKey, now time.Time) ([]byte, error) {
	if len(signedCheckpoint) > MaxSignedCheckpointSize {
		return nil, fmt.Errorf("%w: signed note of %d bytes exceeds %d", ErrCheckpointMalformed, len(signedCheckpoint), MaxSignedCheckpointSize)
	}
	s, err := NewCosignatureSigner(witness, now)
	if err != nil {
		return nil, err
	}
	_, err = note.Open(signedCheckpoint, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return nil, fmt.Errorf("%w: %v", ErrCheckpointMalformed, err)
	}
	n := unverified.Note
	if _, err := ParseCheckpoint([]byte(n.Text)); err != nil {
		return nil, err
	}
	out, err := note.Sign(n, s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCheckpointMalformed, err)
	}
	if len(out) > MaxSignedCheckpointSize {
		return nil, fmt.Errorf("%w: cosigned note would exceed %d bytes", ErrCheckpointMalformed, MaxSignedCheckpointSize)
	}
	return out, nil
}

// VerifyCosignatures verifies the log's signature and returns the checkpoint
// with the witnesses, among those given, whose cosignatures verify, in
// note order. Unknown signers are ignored; an invalid signature by a given
// witness fails the whole note with ErrCosignature.
func VerifyCosignatures(signed []byte, logKey identity.DeviceID, witnesses []identity.DeviceID, origin string) (Checkpoint, []identity.DeviceID, error) {
	return openCheckpoint(signed, logKey, origin, witnesses)
}

func openCheckpoint(msg []byte, logKey identity.DeviceID, origin string, witnesses []identity.DeviceID) (Checkpoint, []identity.DeviceID, error) {
	if len(msg) > MaxSignedCheckpointSize {
		return Checkpoint{}, nil, fmt.Errorf("%w: signed note of %d bytes exceeds %d", ErrCheckpointMalformed, len(msg), MaxSignedCheckpointSize)
	}
	lv, err := NewCheckpointVerifier(origin, logKey)
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("expected origin: %w", err)
	}
	verifiers := []note.Verifier{lv}
	byName := make(map[string]identity.DeviceID, len(witnesses))
	for _, w := range witnesses {
		if _, dup := byName[WitnessName(w)]; dup {
			continue // VerifierList would call a duplicate ambiguous
		}
		byName[WitnessName(w)] = w
		verifiers = append(verifiers, NewCosignatureVerifier(w))
	}

	n, err := note.Open(msg, note.VerifierList(verifiers...))
	var (
		unverified *note.UnverifiedNoteError
		invalid    *note.InvalidSignatureError
	)
	switch {
	case errors.As(err, &unverified):
		n = unverified.Note
	case errors.As(err, &invalid):
		if invalid.Name == lv.Name() && invalid.Hash == lv.KeyHash() {
			return Checkpoint{}, nil, fmt.Errorf("%w: signature does not verify", ErrCheckpointSignature)
		}
		return Checkpoint{}, nil, fmt.Errorf("%w: by %s", ErrCosignature, invalid.Name)
	case err != nil:
		return Checkpoint{}, nil, fmt.Errorf("%w: %v", ErrCheckpointMalformed, err)
	}

	c, err := ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, nil, err
	}
	if c.Origin != origin {
		return Checkpoint{}, nil, fmt.Errorf("%w: %q, want %q", ErrOriginMismatch, c.Origin, origin)
	}
	logSigned := false
	var cosigners []identity.DeviceID
	for _, s := range n.Sigs { // verified signatures only
		if s.Name == lv.Name() && s.Hash == lv.KeyHash() {
			logSigned = true
			continue
		}
		if w, ok := byName[s.Name]; ok {
			cosigners = append(cosigners, w)
		}
	}
	if !logSigned {
		return Checkpoint{}, nil, fmt.Errorf("%w: no signature by %s", ErrCheckpointSignature, lv.Name())
	}
	return c, cosigners, nil
}

// Equivocation is a pair of signed checkpoints from one log.
type Equivocation struct{ A, B []byte }

// Verify returns nil only when both notes carry valid log signatures and are
// inconsistent on their own: the same size with different roots. Checkpoints
// of different sizes are evidence only with a consistency proof shown not to
// exist, which needs more than the two notes (see PROTOCOL.md §17.5); Verify
// returns ErrNotEquivocation for them.
func (e Equivocation) Verify(logKey identity.DeviceID, origin string) error {
	a, err := OpenCheckpoint(e.A, logKey, origin)
	if err != nil {
		return fmt.Errorf("checkpoint A: %w", err)
	}
	b, err := OpenCheckpoint(e.B, logKey, origin)
	if err != nil {
		return fmt.Errorf("checkpoint B: %w", err)
	}
	if a.Size != b.Size {
		return fmt.Errorf("%w: sizes %d and %d differ", ErrNotEquivocation, a.Size, b.Size)
	}
	if bytes.Equal(a.Root[:], b.Root[:]) {
		return fmt.Errorf("%w: same size %d and root", ErrNotEquivocation, a.Size)
	}
	return nil
}

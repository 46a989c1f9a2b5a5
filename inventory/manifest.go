package inventory

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/bitmesh/bitmesh/identity"
)

// DomainObject is the BIP-340 tag of object manifests: an object's ID is
// DomainObject.Hash(unsigned manifest encoding), and the publisher signs
// that ID.
const DomainObject identity.Domain = "bitmesh/object"

// Bounds of a manifest (PROTOCOL.md §20.1).
const (
	manifestVersion = 1
	// MaxManifestSize bounds a manifest's encoding; a decoder refuses more
	// before allocating.
	MaxManifestSize = 1 + 1 + maxNetworkLen + 32 + 8 + 1 + MaxTypeLen + 1 + MaxNameLen + 8 + 4 + 32 + 32 + 32 + 64
	maxNetworkLen   = 64
	// MaxTypeLen and MaxNameLen bound an object's type ("firmware") and
	// name ("sensor-v2.1.bin").
	MaxTypeLen = 32
	MaxNameLen = 128
	// MinChunkSize and MaxChunkSize bound a manifest's chunk size: below,
	// per-chunk costs dominate; above, one chunk is a large allocation.
	MinChunkSize = 16 << 10
	MaxChunkSize = 1 << 20
	// DefaultChunkSize is what Share cuts objects into.
	DefaultChunkSize = 256 << 10
	// MaxChunks bounds an object's chunk count, so its leaf list is at
	// most 2 MiB and its largest size MaxChunks × MaxChunkSize (64 GiB).
	MaxChunks = 1 << 16
)

// ID names an object: the tagged hash of its unsigned manifest.
type ID [32]byte

// String is the ID in lower-case hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports the zero ID (no object: a manifest that supersedes none).
func (id ID) IsZero() bool { return id == ID{} }

// ParseID parses 64 hex digits.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 64 {
		return id, fmt.Errorf("%w: object ID %q is not 64 hex digits", ErrMalformed, s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("%w: object ID %q: %v", ErrMalformed, s, err)
	}
	return id, nil
}

// MarshalText encodes the ID as hex.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes hex.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// Manifest describes an object: what its bytes hash to, how they are cut
// into chunks, and who vouches for them. Every field is signed.
type Manifest struct {
	Network    string            // the mesh's name: a manifest never crosses meshes
	Publisher  identity.DeviceID // the signing device
	Created    time.Time         // whole seconds
	Type       string            // 1..MaxTypeLen of [a-z0-9-]: what wants it (firmware, config)
	Name       string            // 0..MaxNameLen bytes of UTF-8, no control characters
	Size       uint64            // object bytes, at least 1
	ChunkSize  uint32            // MinChunkSize..MaxChunkSize
	Root       [32]byte          // RFC 9162 Merkle tree head over the chunks (tree.go)
	Content    [32]byte          // SHA-256 of the whole object
	Supersedes ID                // an earlier version by the same publisher; zero for none
	Signature  identity.Signature
}

// Chunks is how many chunks the object has.
func (m *Manifest) Chunks() int {
	return int((m.Size + uint64(m.ChunkSize) - 1) / uint64(m.ChunkSize))
}

// ChunkLen is the length of chunk i: ChunkSize but for the last.
func (m *Manifest) ChunkLen(i int) int {
	if i == m.Chunks()-1 {
		if r := m.Size % uint64(m.ChunkSize); r != 0 {
			return int(r)
		}
	}
	return int(m.ChunkSize)
}

func validType(t string) bool {
	if t == "" || len(t) > MaxTypeLen {
		return false
	}
	for _, c := range []byte(t) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func validName(n string) bool {
	if len(n) > MaxNameLen || !utf8.ValidString(n) {
		return false
	}
	for _, r := range n {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// check reports the first field outside its bounds.
func (m *Manifest) check() error {
	switch {
	case m.Network == "" || len(m.Network) > maxNetworkLen:
		return fmt.Errorf("%w: network name of %d bytes", ErrMalformed, len(m.Network))
	case !validType(m.Type):
		return fmt.Errorf("%w: type %q (1..%d of a-z, 0-9, '-')", ErrMalformed, m.Type, MaxTypeLen)
	case !validName(m.Name):
		return fmt.Errorf("%w: name %q", ErrMalformed, m.Name)
	case m.ChunkSize < MinChunkSize || m.ChunkSize > MaxChunkSize:
		return fmt.Errorf("%w: chunk size %d", ErrMalformed, m.ChunkSize)
	case m.Size == 0 || m.Size > uint64(MaxChunks)*uint64(m.ChunkSize):
		return fmt.Errorf("%w: size %d with chunks of %d", ErrMalformed, m.Size, m.ChunkSize)
	case m.Created.Unix() < 0:
		return fmt.Errorf("%w: created %v", ErrMalformed, m.Created)
	}
	return nil
}

// appendUnsigned appends the encoding without the signature.
func (m *Manifest) appendUnsigned(b []byte) ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	b = append(b, manifestVersion, byte(len(m.Network)))
	b = append(b, m.Network...)
	b = append(b, m.Publisher[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Created.Unix()))
	b = append(b, byte(len(m.Type)))
	b = append(b, m.Type...)
	b = append(b, byte(len(m.Name)))
	b = append(b, m.Name...)
	b = binary.BigEndian.AppendUint64(b, m.Size)
	b = binary.BigEndian.AppendUint32(b, m.ChunkSize)
	b = append(b, m.Root[:]...)
	b = append(b, m.Content[:]...)
	return append(b, m.Supersedes[:]...), nil
}

// ID computes the object's ID.
func (m *Manifest) ID() (ID, error) {
	b, err := m.appendUnsigned(make([]byte, 0, MaxManifestSize))
	if err != nil {
		return ID{}, err
	}
	return ID(DomainObject.Hash(b)), nil
}

// Sign sets Publisher to key's device and signs the manifest; it returns
// the object's ID.
func (m *Manifest) Sign(key *identity.PrivateKey) (ID, error) {
	m.Publisher = key.DeviceID()
	m.Created = m.Created.Truncate(time.Second)
	id, err := m.ID()
	if err != nil {
		return ID{}, err
	}
	if m.Signature, err = key.SignHash(id); err != nil {
		return ID{}, err
	}
	return id, nil
}

// Encode returns the canonical encoding, signature last.
func (m *Manifest) Encode() ([]byte, error) {
	b, err := m.appendUnsigned(make([]byte, 0, MaxManifestSize))
	if err != nil {
		return nil, err
	}
	return append(b, m.Signature[:]...), nil
}

// Verify checks the signature and that the manifest is network's; it
// returns the object's ID.
func (m *Manifest) Verify(network string) (ID, error) {
	if m.Network != network {
		return ID{}, fmt.Errorf("%w: %q, not %q", ErrWrongNetwork, m.Network, network)
	}
	id, err := m.ID()
	if err != nil {
		return ID{}, err
	}
	if err := identity.VerifyBIP340(m.Publisher, id, m.Signature); err != nil {
		return ID{}, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return id, nil
}

// DecodeManifest parses a canonical encoding: at most MaxManifestSize
// bytes, every field within its bounds, nothing after the signature. It
// does not verify the signature (Verify does).
func DecodeManifest(b []byte) (*Manifest, error) {
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("%w: manifest of %d bytes, at most %d", ErrMalformed, len(b), MaxManifestSize)
	}
	d := decoder{b: b}
	if v := d.byte("version"); d.err == nil && v != manifestVersion {
		return nil, fmt.Errorf("%w: manifest version %d", ErrMalformed, v)
	}
	var m Manifest
	m.Network = string(d.bytes("network", int(d.byte("network length"))))
	copy(m.Publisher[:], d.bytes("publisher", 32))
	created := d.uint64("created")
	m.Type = string(d.bytes("type", int(d.byte("type length"))))
	m.Name = string(d.bytes("name", int(d.byte("name length"))))
	m.Size = d.uint64("size")
	m.ChunkSize = uint32(d.uint64n("chunk size", 4))
	copy(m.Root[:], d.bytes("root", 32))
	copy(m.Content[:], d.bytes("content hash", 32))
	copy(m.Supersedes[:], d.bytes("supersedes", 32))
	copy(m.Signature[:], d.bytes("signature", 64))
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the manifest", ErrMalformed, len(d.b))
	}
	if created > 1<<62 {
		return nil, fmt.Errorf("%w: created %d", ErrMalformed, created)
	}
	m.Created = time.Unix(int64(created), 0).UTC()
	if err := m.check(); err != nil {
		return nil, err
	}
	return &m, nil
}

// decoder reads fields from b; the first short read sets err and every
// later read returns zeroes.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) bytes(field string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.err = fmt.Errorf("%w: %s: %d bytes left, need %d", ErrMalformed, field, len(d.b), n)
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) byte(field string) byte {
	if b := d.bytes(field, 1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) uint64n(field string, n int) uint64 {
	b := d.bytes(field, n)
	if b == nil {
		return 0
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

func (d *decoder) uint64(field string) uint64 { return d.uint64n(field, 8) }

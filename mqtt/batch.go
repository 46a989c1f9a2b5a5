package mqtt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Batch format (docs/PROTOCOL.md §20). A gateway packs the MQTT messages of
// one mesh topic that arrive within a linger into one envelope payload:
//
//	magic "BMQB" | version 1 | count u16 | root [32]byte | entry × count
//	entry: flags u8 | time ms u64 | packet id u16 |
//	       client id u8 len + bytes | MQTT topic u16 len + bytes |
//	       payload u32 len + bytes
//
// All integers are big-endian. root is the RFC 6962 Merkle tree hash over
// the entries' encodings (leaf i = SHA-256(0x00 ‖ entry i)), so each entry
// is provable on its own by an audit path to root, and the envelope's one
// signature covers every entry. A decoder recomputes root and refuses a
// batch whose header root differs.
const (
	batchMagic   = "BMQB"
	batchVersion = 1
	batchHeader  = 4 + 1 + 2 + 32
	entryFixed   = 1 + 8 + 2 + 1 + 2 + 4

	// MaxBatchEntries bounds the entries of one batch.
	MaxBatchEntries = 1<<16 - 1
	// MaxClientIDLen bounds an MQTT client ID recorded in an entry.
	MaxClientIDLen = 255
	// MaxMQTTTopicLen bounds an MQTT topic name recorded in an entry.
	MaxMQTTTopicLen = 1024
)

// Entry flags.
const (
	// FlagQoS1: the device published with QoS 1 or 2; the gateway
	// acknowledged it only once the batch was durable.
	FlagQoS1 = 1 << 0
	// FlagRetain: the device asked the broker to retain the message.
	FlagRetain = 1 << 1
)

// Entry is one MQTT message in a batch.
type Entry struct {
	Flags    byte
	Time     time.Time // when the gateway received it, to the millisecond
	PacketID uint16    // the device's MQTT packet ID (0 for QoS 0)
	ClientID string    // the MQTT client ID the device connected with
	Topic    string    // the MQTT topic it published on
	Payload  []byte
}

// EncodedSize is the entry's size in a batch.
func (e *Entry) EncodedSize() int {
	return entryFixed + len(e.ClientID) + len(e.Topic) + len(e.Payload)
}

func (e *Entry) check() error {
	switch {
	case len(e.ClientID) > MaxClientIDLen:
		return fmt.Errorf("%w: client ID of %d bytes exceeds %d", ErrBatchMalformed, len(e.ClientID), MaxClientIDLen)
	case len(e.Topic) == 0 || len(e.Topic) > MaxMQTTTopicLen:
		return fmt.Errorf("%w: MQTT topic of %d bytes (want 1..%d)", ErrBatchMalformed, len(e.Topic), MaxMQTTTopicLen)
	case !utf8.ValidString(e.Topic) || !utf8.ValidString(e.ClientID):
		return fmt.Errorf("%w: topic or client ID is not UTF-8", ErrBatchMalformed)
	case strings.ContainsAny(e.Topic, "+#\x00"):
		// A topic name, never a filter: a gateway would otherwise publish
		// a mesh peer's wildcard to its subscribers.
		return fmt.Errorf("%w: MQTT topic %q holds a wildcard or NUL", ErrBatchMalformed, e.Topic)
	case len(e.Payload) > maxEntryPayload:
		return fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrBatchMalformed, len(e.Payload), maxEntryPayload)
	}
	return nil
}

// maxEntryPayload is what u32 lengths could name beyond any envelope;
// the envelope's own bound applies first.
const maxEntryPayload = 1 << 20

func (e *Entry) appendTo(b []byte) []byte {
	b = append(b, e.Flags)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixMilli()))
	b = binary.BigEndian.AppendUint16(b, e.PacketID)
	b = append(b, byte(len(e.ClientID)))
	b = append(b, e.ClientID...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.Topic)))
	b = append(b, e.Topic...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Payload)))
	return append(b, e.Payload...)
}

// Batch is a decoded batch: its entries, their encodings and tree root.
type Batch struct {
	Root    [32]byte
	Entries []Entry
	leaves  [][]byte // entry encodings, sub-slices of the payload
}

// IsBatch tells whether payload claims to be a batch (its magic); a
// payload that does not is an ordinary mesh message.
func IsBatch(payload []byte) bool { return bytes.HasPrefix(payload, []byte(batchMagic)) }

// EncodeBatch encodes entries as a batch payload.
func EncodeBatch(entries []Entry) ([]byte, error) {
	if len(entries) == 0 || len(entries) > MaxBatchEntries {
		return nil, fmt.Errorf("%w: %d entries (want 1..%d)", ErrBatchMalformed, len(entries), MaxBatchEntries)
	}
	size := batchHeader
	for i := range entries {
		if err := entries[i].check(); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		size += entries[i].EncodedSize()
	}
	b := make([]byte, batchHeader, size)
	copy(b, batchMagic)
	b[4] = batchVersion
	binary.BigEndian.PutUint16(b[5:], uint16(len(entries)))
	leaves := make([][]byte, len(entries))
	for i := range entries {
		start := len(b)
		b = entries[i].appendTo(b)
		leaves[i] = b[start:]
	}
	root := treeRoot(leaves)
	copy(b[7:batchHeader], root[:])
	return b, nil
}

// DecodeBatch decodes a batch payload, checking every length against what
// is left before using it and the root against the entries. The entries'
// strings are copies; their payloads alias p.
func DecodeBatch(p []byte) (*Batch, error) {
	if len(p) < batchHeader {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrBatchMalformed, len(p), batchHeader)
	}
	if !IsBatch(p) {
		return nil, fmt.Errorf("%w: no batch magic", ErrBatchMalformed)
	}
	if p[4] != batchVersion {
		return nil, fmt.Errorf("%w: version %d (want %d)", ErrBatchMalformed, p[4], batchVersion)
	}
	n := int(binary.BigEndian.Uint16(p[5:]))
	if n == 0 {
		return nil, fmt.Errorf("%w: no entries", ErrBatchMalformed)
	}
	// Every entry takes at least entryFixed bytes: refuse a count the
	// payload cannot hold before allocating for it.
	if n > (len(p)-batchHeader)/entryFixed {
		return nil, fmt.Errorf("%w: %d entries cannot fit %d bytes", ErrBatchMalformed, n, len(p))
	}
	b := &Batch{Entries: make([]Entry, n), leaves: make([][]byte, n)}
	copy(b.Root[:], p[7:batchHeader])
	off := batchHeader
	for i := 0; i < n; i++ {
		start := off
		e, next, err := decodeEntry(p, off)
		if err != nil {
			return nil, fmt.Errorf("entry %d at byte %d: %w", i, off, err)
		}
		b.Entries[i], b.leaves[i], off = e, p[start:next], next
	}
	if off != len(p) {
		return nil, fmt.Errorf("%w: %d bytes after the last entry", ErrBatchMalformed, len(p)-off)
	}
	if root := treeRoot(b.leaves); root != b.Root {
		return nil, fmt.Errorf("%w: root %x does not hash the entries (%x)", ErrBatchMalformed, b.Root[:8], root[:8])
	}
	return b, nil
}

func decodeEntry(p []byte, off int) (Entry, int, error) {
	var e Entry
	need := func(n int) error {
		if len(p)-off < n {
			return fmt.Errorf("%w: truncated (need %d bytes, %d left)", ErrBatchMalformed, n, len(p)-off)
		}
		return nil
	}
	if err := need(1 + 8 + 2 + 1); err != nil {
		return e, 0, err
	}
	e.Flags = p[off]
	if e.Flags&^(FlagQoS1|FlagRetain) != 0 {
		return e, 0, fmt.Errorf("%w: unknown flags %#x", ErrBatchMalformed, e.Flags)
	}
	ms := binary.BigEndian.Uint64(p[off+1:])
	if ms > 1<<53 {
		return e, 0, fmt.Errorf("%w: time %d out of range", ErrBatchMalformed, ms)
	}
	e.Time = time.UnixMilli(int64(ms))
	e.PacketID = binary.BigEndian.Uint16(p[off+9:])
	cl := int(p[off+11])
	off += 12
	if err := need(cl + 2); err != nil {
		return e, 0, err
	}
	e.ClientID = string(p[off : off+cl])
	off += cl
	tl := int(binary.BigEndian.Uint16(p[off:]))
	off += 2
	if err := need(tl + 4); err != nil {
		return e, 0, err
	}
	e.Topic = string(p[off : off+tl])
	off += tl
	pl := int(binary.BigEndian.Uint32(p[off:]))
	off += 4
	if err := need(pl); err != nil {
		return e, 0, err
	}
	e.Payload = p[off : off+pl : off+pl]
	off += pl
	if err := e.check(); err != nil {
		return e, 0, err
	}
	return e, off, nil
}

// EntryProof is the RFC 6962 audit path of entry i to the batch root.
func (b *Batch) EntryProof(i int) ([][]byte, error) {
	if i < 0 || i >= len(b.leaves) {
		return nil, fmt.Errorf("%w: entry %d of %d", ErrBatchMalformed, i, len(b.leaves))
	}
	return inclusionProof(b.leaves, i), nil
}

// VerifyEntry checks that entry (its encoding in a batch) is entry i of a
// batch of size entries with root, by its audit path.
func VerifyEntry(entry []byte, i, size int, path [][]byte, root [32]byte) error {
	if i < 0 || i >= size || len(path) > 64 {
		return fmt.Errorf("%w: entry %d of %d, path of %d", ErrBatchMalformed, i, size, len(path))
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(entry)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(i), uint64(size), leaf, path, root[:]); err != nil {
		return fmt.Errorf("%w: %v", ErrBatchMalformed, err)
	}
	return nil
}

// Leaf returns entry i's encoding as it is hashed into the root.
func (b *Batch) Leaf(i int) []byte { return b.leaves[i] }

// treeRoot is the RFC 6962 tree hash of leaves (MTH).
func treeRoot(leaves [][]byte) [32]byte {
	h := make([][]byte, len(leaves))
	for i, l := range leaves {
		h[i] = rfc6962.DefaultHasher.HashLeaf(l)
	}
	var out [32]byte
	copy(out[:], mth(h))
	return out
}

func mth(h [][]byte) []byte {
	switch len(h) {
	case 0:
		s := sha256.Sum256(nil)
		return s[:]
	case 1:
		return h[0]
	}
	k := split(len(h))
	return rfc6962.DefaultHasher.HashChildren(mth(h[:k]), mth(h[k:]))
}

// split is the largest power of two smaller than n (RFC 6962 §2.1).
func split(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

// inclusionProof is RFC 6962's PATH(i, D[n]).
func inclusionProof(leaves [][]byte, i int) [][]byte {
	h := make([][]byte, len(leaves))
	for j, l := range leaves {
		h[j] = rfc6962.DefaultHasher.HashLeaf(l)
	}
	return path(h, i)
}

func path(h [][]byte, i int) [][]byte {
	if len(h) <= 1 {
		return nil
	}
	k := split(len(h))
	if i < k {
		return append(path(h[:k], i), mth(h[k:]))
	}
	return append(path(h[k:], i-k), mth(h[:k]))
}

package inventory

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/protocol"
)

// ProtocolID is the object stream protocol (PROTOCOL.md §20.3): one
// request per stream, then its answer.
const ProtocolID protocol.ID = "/bitmesh/inv/1.0.0"

// Request kinds.
const (
	KindInv         = 1 // count u16, count × ID; no answer
	KindGetManifest = 2 // ID; answer: status, u16 length, manifest
	KindGetLeaves   = 3 // ID; answer: status, u32 count, count × 32-byte leaf hash
	KindGetData     = 4 // ID, first u32, count u16; answer: per chunk status, u32 length, bytes
)

// Answer status bytes.
const (
	StatusOK       = 0
	StatusNotFound = 1 // this and every later item of the request: not here
)

// Bounds of the stream protocol (PROTOCOL.md §20.3).
const (
	// MaxInvPerMsg bounds the IDs of one inv (btcd's trickle batch is
	// 1000 too); more is a protocol violation.
	MaxInvPerMsg = 1000
	// MaxChunksPerRequest bounds one getdata: 64 chunks of at most 1 MiB.
	MaxChunksPerRequest = 64
	// MaxRequestSize is the largest request: a full inv.
	MaxRequestSize = 1 + 2 + MaxInvPerMsg*32
)

// Request is one request of the stream protocol.
type Request struct {
	Kind  byte
	IDs   []ID   // KindInv: 1..MaxInvPerMsg; other kinds: exactly one
	First uint32 // KindGetData
	Count uint16 // KindGetData: 1..MaxChunksPerRequest
}

// Encode returns the request's bytes.
func (r Request) Encode() ([]byte, error) {
	switch r.Kind {
	case KindInv:
		if len(r.IDs) == 0 || len(r.IDs) > MaxInvPerMsg {
			return nil, fmt.Errorf("%w: inv of %d IDs", ErrMalformed, len(r.IDs))
		}
		b := binary.BigEndian.AppendUint16([]byte{KindInv}, uint16(len(r.IDs)))
		for _, id := range r.IDs {
			b = append(b, id[:]...)
		}
		return b, nil
	case KindGetManifest, KindGetLeaves, KindGetData:
		if len(r.IDs) != 1 {
			return nil, fmt.Errorf("%w: request kind %d with %d IDs", ErrMalformed, r.Kind, len(r.IDs))
		}
		b := append([]byte{r.Kind}, r.IDs[0][:]...)
		if r.Kind == KindGetData {
			if r.Count == 0 || r.Count > MaxChunksPerRequest || uint64(r.First)+uint64(r.Count) > MaxChunks {
				return nil, fmt.Errorf("%w: getdata of %d chunks from %d", ErrMalformed, r.Count, r.First)
			}
			b = binary.BigEndian.AppendUint32(b, r.First)
			b = binary.BigEndian.AppendUint16(b, r.Count)
		}
		return b, nil
	}
	return nil, fmt.Errorf("%w: request kind %d", ErrMalformed, r.Kind)
}

// ReadRequest reads one request, at most MaxRequestSize bytes, checking
// every bound before it allocates.
func ReadRequest(r io.Reader) (Request, error) {
	var kind [1]byte
	if _, err := io.ReadFull(r, kind[:]); err != nil {
		return Request{}, fmt.Errorf("%w: request kind: %w", ErrMalformed, err)
	}
	req := Request{Kind: kind[0]}
	switch req.Kind {
	case KindInv:
		var n [2]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return Request{}, fmt.Errorf("%w: inv count: %w", ErrMalformed, err)
		}
		count := int(binary.BigEndian.Uint16(n[:]))
		if count == 0 || count > MaxInvPerMsg {
			return Request{}, fmt.Errorf("%w: inv of %d IDs, at most %d", ErrMalformed, count, MaxInvPerMsg)
		}
		req.IDs = make([]ID, count)
		for i := range req.IDs {
			if _, err := io.ReadFull(r, req.IDs[i][:]); err != nil {
				return Request{}, fmt.Errorf("%w: inv ID %d: %w", ErrMalformed, i, err)
			}
		}
	case KindGetManifest, KindGetLeaves, KindGetData:
		req.IDs = make([]ID, 1)
		if _, err := io.ReadFull(r, req.IDs[0][:]); err != nil {
			return Request{}, fmt.Errorf("%w: request ID: %w", ErrMalformed, err)
		}
		if req.Kind == KindGetData {
			var b [6]byte
			if _, err := io.ReadFull(r, b[:]); err != nil {
				return Request{}, fmt.Errorf("%w: getdata range: %w", ErrMalformed, err)
			}
			req.First, req.Count = binary.BigEndian.Uint32(b[:4]), binary.BigEndian.Uint16(b[4:])
			if req.Count == 0 || req.Count > MaxChunksPerRequest || uint64(req.First)+uint64(req.Count) > MaxChunks {
				return Request{}, fmt.Errorf("%w: getdata of %d chunks from %d", ErrMalformed, req.Count, req.First)
			}
		}
	default:
		return Request{}, fmt.Errorf("%w: request kind %d", ErrMalformed, req.Kind)
	}
	return req, nil
}

// readStatus reads a status byte: nil for OK, ErrNotFound, or
// ErrMalformed.
func readStatus(r io.Reader) error {
	var s [1]byte
	if _, err := io.ReadFull(r, s[:]); err != nil {
		return fmt.Errorf("%w: status: %w", ErrMalformed, err)
	}
	switch s[0] {
	case StatusOK:
		return nil
	case StatusNotFound:
		return ErrNotFound
	}
	return fmt.Errorf("%w: status %d", ErrMalformed, s[0])
}

// AppendManifestAnswer appends the answer to a getmanifest: StatusOK, the
// u16 length, the manifest.
func AppendManifestAnswer(b, manifest []byte) []byte {
	b = binary.BigEndian.AppendUint16(append(b, StatusOK), uint16(len(manifest)))
	return append(b, manifest...)
}

// ReadManifestAnswer reads the answer to a getmanifest for id: the
// manifest, decoded, its signature verified for network, and its ID
// checked to be id. A manifest that is not id's is ErrBadChunk.
func ReadManifestAnswer(r io.Reader, id ID, network string) (*Manifest, []byte, error) {
	if err := readStatus(r); err != nil {
		return nil, nil, err
	}
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, nil, fmt.Errorf("%w: manifest length: %v", ErrMalformed, err)
	}
	size := int(binary.BigEndian.Uint16(n[:]))
	if size > MaxManifestSize {
		return nil, nil, fmt.Errorf("%w: manifest of %d bytes", ErrMalformed, size)
	}
	raw := make([]byte, size)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, nil, fmt.Errorf("%w: manifest: %v", ErrMalformed, err)
	}
	m, err := DecodeManifest(raw)
	if err != nil {
		return nil, nil, err
	}
	got, err := m.Verify(network)
	if err != nil {
		return nil, nil, err
	}
	if got != id {
		return nil, nil, fmt.Errorf("%w: asked for manifest %s, got %s", ErrBadChunk, id, got)
	}
	return m, raw, nil
}

// AppendLeavesAnswer appends the answer to a getleaves.
func AppendLeavesAnswer(b []byte, leaves [][32]byte) []byte {
	b = binary.BigEndian.AppendUint32(append(b, StatusOK), uint32(len(leaves)))
	for _, l := range leaves {
		b = append(b, l[:]...)
	}
	return b
}

// ReadLeavesAnswer reads the answer to a getleaves for m and checks the
// leaves against its root.
func ReadLeavesAnswer(r io.Reader, m *Manifest) ([][32]byte, error) {
	if err := readStatus(r); err != nil {
		return nil, err
	}
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, fmt.Errorf("%w: leaf count: %v", ErrMalformed, err)
	}
	count := binary.BigEndian.Uint32(n[:])
	if count != uint32(m.Chunks()) {
		return nil, fmt.Errorf("%w: %d leaves for %d chunks", ErrBadChunk, count, m.Chunks())
	}
	leaves := make([][32]byte, count)
	for i := range leaves {
		if _, err := io.ReadFull(r, leaves[i][:]); err != nil {
			return nil, fmt.Errorf("%w: leaf %d: %v", ErrMalformed, i, err)
		}
	}
	return leaves, CheckLeaves(m, leaves)
}

// AppendChunkHeader appends the header of one chunk of a getdata answer.
func AppendChunkHeader(b []byte, length int) []byte {
	return binary.BigEndian.AppendUint32(append(b, StatusOK), uint32(length))
}

// ReadChunk reads one chunk of a getdata answer into buf, which must be
// want bytes long: a chunk of another length is ErrBadChunk before any of
// it is read.
func ReadChunk(r io.Reader, buf []byte) error {
	if err := readStatus(r); err != nil {
		return err
	}
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return fmt.Errorf("%w: chunk length: %v", ErrMalformed, err)
	}
	if got := binary.BigEndian.Uint32(n[:]); got != uint32(len(buf)) {
		return fmt.Errorf("%w: chunk of %d bytes, the manifest says %d", ErrBadChunk, got, len(buf))
	}
	if _, err := io.ReadFull(r, buf); err != nil {
		return fmt.Errorf("%w: chunk: %w", ErrMalformed, err)
	}
	return nil
}

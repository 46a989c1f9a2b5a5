package meshlog

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/node/ext"
)

// ProtocolID is the stream protocol through which witnesses ask a log for
// consistency proofs (PROTOCOL.md §18.3).
const ProtocolID protocol.ID = "/bitmesh/log/1.0.0"

// Request kinds (PROTOCOL.md §18.3).
const (
	ReqConsistency = 1 // A = size1, B = size2
	ReqEntries     = 2 // A = start, B = count (at most MaxEntriesPerRequest)
	ReqRange       = 3 // A = size
	ReqLatest      = 4 // A, B unused (zero)

	statusOK    = 0
	statusError = 1

	maxProofHashes = 64 // any tree of up to 2^64 leaves
	// MaxEntriesPerRequest bounds the entries one request asks for.
	MaxEntriesPerRequest = 256
	// MaxEntriesResponseBytes bounds the entry bytes of one answer: it
	// holds as many of the entries asked for as fit, and always the first
	// (at most anchor.MaxLeafSize). The asker asks again for the rest.
	MaxEntriesResponseBytes = 1 << 20
	maxEntriesResponse      = 1 + 2 + MaxEntriesPerRequest*4 + MaxEntriesResponseBytes + anchor.MaxLeafSize
	// streamTimeout bounds one request and its answer.
	streamTimeout = 10 * time.Second
)

// logStreams bounds the requests a node serves: an answer holds at most
// about 2 MiB (MaxEntriesResponseBytes and one more leaf while it is
// read), so eight at once hold at most 16 MiB, however large the log.
var logStreams = ext.StreamLimits{PerPeer: 2, Total: 8, Timeout: streamTimeout}

var _ ext.Streams = (*MeshLog)(nil)

// Streams implements ext.Streams.
func (m *MeshLog) Streams() map[protocol.ID]ext.StreamLimits {
	return map[protocol.ID]ext.StreamLimits{ProtocolID: logStreams}
}

// Request asks a log's device about its log: which of the Req kinds, the
// log's origin and two numbers whose meaning depends on the kind.
type Request struct {
	Kind   byte
	Origin string
	A, B   uint64
}

// ConsistencyResponse answers a ReqConsistency (and, Proof empty, a
// ReqRange: Proof then holds the range hashes).
type ConsistencyResponse struct {
	Root1 [32]byte
	Proof [][32]byte
}

const requestMax = 2 + 255 + 16

// Encode: kind byte, origin length byte, origin, A and B as big-endian
// 64-bit integers.
func (r Request) Encode() ([]byte, error) {
	if r.Origin == "" || len(r.Origin) > 255 {
		return nil, fmt.Errorf("%w: origin of %d bytes", ErrMalformed, len(r.Origin))
	}
	if r.Kind < ReqConsistency || r.Kind > ReqLatest {
		return nil, fmt.Errorf("%w: request kind %d", ErrMalformed, r.Kind)
	}
	b := []byte{r.Kind, byte(len(r.Origin))}
	b = append(b, r.Origin...)
	b = binary.BigEndian.AppendUint64(b, r.A)
	return binary.BigEndian.AppendUint64(b, r.B), nil
}

// ReadRequest reads one request, at most 2+255+16 bytes.
func ReadRequest(r io.Reader) (Request, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Request{}, fmt.Errorf("%w: request header: %v", ErrMalformed, err)
	}
	if hdr[0] < ReqConsistency || hdr[0] > ReqLatest || hdr[1] == 0 {
		return Request{}, fmt.Errorf("%w: request kind %d, origin length %d", ErrMalformed, hdr[0], hdr[1])
	}
	body := make([]byte, int(hdr[1])+16)
	if _, err := io.ReadFull(r, body); err != nil {
		return Request{}, fmt.Errorf("%w: request body: %v", ErrMalformed, err)
	}
	n := len(body) - 16
	return Request{
		Kind:   hdr[0],
		Origin: string(body[:n]),
		A:      binary.BigEndian.Uint64(body[n:]),
		B:      binary.BigEndian.Uint64(body[n+8:]),
	}, nil
}

// writeResponse writes status OK, Root1, the hash count and the hashes; or
// status error, a length byte and the message.
func writeResponse(w io.Writer, resp ConsistencyResponse, failure error) error {
	var b []byte
	if failure != nil {
		msg := failure.Error()
		if len(msg) > 255 {
			msg = msg[:255]
		}
		b = append([]byte{statusError, byte(len(msg))}, msg...)
	} else {
		if len(resp.Proof) > maxProofHashes {
			return fmt.Errorf("%w: proof of %d hashes", ErrMalformed, len(resp.Proof))
		}
		b = append([]byte{statusOK}, resp.Root1[:]...)
		b = append(b, byte(len(resp.Proof)))
		for _, h := range resp.Proof {
			b = append(b, h[:]...)
		}
	}
	_, err := w.Write(b)
	return err
}

// readStatus reads an answer's status byte; a refusal is an error
// wrapping ErrRemote.
func readStatus(r io.Reader) error {
	var status [1]byte
	if _, err := io.ReadFull(r, status[:]); err != nil {
		return fmt.Errorf("%w: response status: %v", ErrMalformed, err)
	}
	switch status[0] {
	case statusOK:
		return nil
	case statusError:
		var n [1]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return fmt.Errorf("%w: error length: %v", ErrMalformed, err)
		}
		msg := make([]byte, n[0])
		if _, err := io.ReadFull(r, msg); err != nil {
			return fmt.Errorf("%w: error text: %v", ErrMalformed, err)
		}
		return fmt.Errorf("%w: %q", ErrRemote, msg)
	default:
		return fmt.Errorf("%w: status %d", ErrMalformed, status[0])
	}
}

// ReadConsistencyResponse reads the answer to a ReqConsistency or ReqRange.
func ReadConsistencyResponse(r io.Reader) (ConsistencyResponse, error) {
	if err := readStatus(r); err != nil {
		return ConsistencyResponse{}, err
	}
	var resp ConsistencyResponse
	var count [1]byte
	if _, err := io.ReadFull(r, resp.Root1[:]); err != nil {
		return ConsistencyResponse{}, fmt.Errorf("%w: root: %v", ErrMalformed, err)
	}
	if _, err := io.ReadFull(r, count[:]); err != nil {
		return ConsistencyResponse{}, fmt.Errorf("%w: proof length: %v", ErrMalformed, err)
	}
	if count[0] > maxProofHashes {
		return ConsistencyResponse{}, fmt.Errorf("%w: proof of %d hashes", ErrMalformed, count[0])
	}
	resp.Proof = make([][32]byte, count[0])
	for i := range resp.Proof {
		if _, err := io.ReadFull(r, resp.Proof[i][:]); err != nil {
			return ConsistencyResponse{}, fmt.Errorf("%w: proof hash %d: %v", ErrMalformed, i, err)
		}
	}
	return resp, nil
}

// writeBlobs writes status OK, a 16-bit count, and each blob with a
// 32-bit length: the answer to ReqEntries (envelopes) and ReqLatest (one
// signed note).
func writeBlobs(w io.Writer, blobs [][]byte) error {
	if _, err := w.Write(binary.BigEndian.AppendUint16([]byte{statusOK}, uint16(len(blobs)))); err != nil {
		return err
	}
	for _, x := range blobs {
		if _, err := w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(x)))); err != nil {
			return err
		}
		if _, err := w.Write(x); err != nil {
			return err
		}
	}
	return nil
}

// ReadBlobs reads an answer written by writeBlobs: at most max blobs of at
// most maxSize bytes each.
func ReadBlobs(r io.Reader, max int, maxSize uint32) ([][]byte, error) {
	if err := readStatus(r); err != nil {
		return nil, err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:2]); err != nil {
		return nil, fmt.Errorf("%w: count: %v", ErrMalformed, err)
	}
	n := int(binary.BigEndian.Uint16(hdr[:2]))
	if n > max {
		return nil, fmt.Errorf("%w: %d items, at most %d", ErrMalformed, n, max)
	}
	out := make([][]byte, 0, n)
	for i := range n {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, fmt.Errorf("%w: item %d length: %v", ErrMalformed, i, err)
		}
		size := binary.BigEndian.Uint32(hdr[:])
		if size > maxSize {
			return nil, fmt.Errorf("%w: item %d of %d bytes", ErrMalformed, i, size)
		}
		x := make([]byte, size)
		if _, err := io.ReadFull(r, x); err != nil {
			return nil, fmt.Errorf("%w: item %d: %v", ErrMalformed, i, err)
		}
		out = append(out, x)
	}
	return out, nil
}

// handleStream answers one request about a log this node keeps. The node
// bounds how many run at once and for how long (logStreams).
func (m *MeshLog) handleStream(s network.Stream) {
	defer s.Close()
	req, err := ReadRequest(bufio.NewReader(io.LimitReader(s, requestMax)))
	if err != nil {
		_ = s.Reset()
		return
	}
	w := bufio.NewWriter(s)
	defer w.Flush()
	switch req.Kind {
	case ReqConsistency, ReqRange:
		resp, err := m.consistency(req)
		_ = writeResponse(w, resp, err)
	case ReqEntries, ReqLatest:
		blobs, err := m.blobs(req)
		if err != nil {
			_ = writeResponse(w, ConsistencyResponse{}, err)
			return
		}
		_ = writeBlobs(w, blobs)
	}
}

// ask sends req to peer p and reads the answer with read.
func ask[T any](ctx context.Context, h host.Host, p peer.ID, req Request, limit int64, read func(io.Reader) (T, error)) (T, error) {
	var zero T
	ctx, cancel := context.WithTimeout(ctx, streamTimeout)
	defer cancel()
	b, err := req.Encode()
	if err != nil {
		return zero, err
	}
	s, err := h.NewStream(ctx, p, ProtocolID)
	if err != nil {
		return zero, err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if _, err := s.Write(b); err != nil {
		_ = s.Reset()
		return zero, err
	}
	_ = s.CloseWrite()
	return read(bufio.NewReader(io.LimitReader(s, limit)))
}

// fetchConsistency asks peer p for a consistency proof of origin's log.
func fetchConsistency(ctx context.Context, h host.Host, p peer.ID, req Request) (ConsistencyResponse, error) {
	req.Kind = ReqConsistency
	return ask(ctx, h, p, req, 1+32+1+maxProofHashes*32, ReadConsistencyResponse)
}

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
)

// ProtocolID is the stream protocol through which witnesses ask a log for
// consistency proofs (PROTOCOL.md §18.3).
const ProtocolID protocol.ID = "/bitmesh/log/1.0.0"

const (
	reqConsistency = 1

	statusOK    = 0
	statusError = 1

	maxProofHashes = 64 // any tree of up to 2^64 leaves
	// streamTimeout bounds one request and its answer.
	streamTimeout = 10 * time.Second
)

// ConsistencyRequest asks a log for the root of its first Size1 leaves and
// the RFC 9162 consistency proof from that tree to the tree of Size2.
type ConsistencyRequest struct {
	Origin       string
	Size1, Size2 uint64
}

// ConsistencyResponse answers a ConsistencyRequest.
type ConsistencyResponse struct {
	Root1 [32]byte
	Proof [][32]byte
}

// Encode: kind byte 1, origin length byte, origin, Size1 and Size2 as
// big-endian 64-bit integers.
func (r ConsistencyRequest) Encode() ([]byte, error) {
	if r.Origin == "" || len(r.Origin) > 255 {
		return nil, fmt.Errorf("%w: origin of %d bytes", ErrMalformed, len(r.Origin))
	}
	b := []byte{reqConsistency, byte(len(r.Origin))}
	b = append(b, r.Origin...)
	b = binary.BigEndian.AppendUint64(b, r.Size1)
	return binary.BigEndian.AppendUint64(b, r.Size2), nil
}

// ReadConsistencyRequest reads one request, at most 2+255+16 bytes.
func ReadConsistencyRequest(r io.Reader) (ConsistencyRequest, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return ConsistencyRequest{}, fmt.Errorf("%w: request header: %v", ErrMalformed, err)
	}
	if hdr[0] != reqConsistency || hdr[1] == 0 {
		return ConsistencyRequest{}, fmt.Errorf("%w: request kind %d, origin length %d", ErrMalformed, hdr[0], hdr[1])
	}
	body := make([]byte, int(hdr[1])+16)
	if _, err := io.ReadFull(r, body); err != nil {
		return ConsistencyRequest{}, fmt.Errorf("%w: request body: %v", ErrMalformed, err)
	}
	n := len(body) - 16
	return ConsistencyRequest{
		Origin: string(body[:n]),
		Size1:  binary.BigEndian.Uint64(body[n:]),
		Size2:  binary.BigEndian.Uint64(body[n+8:]),
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

// ReadConsistencyResponse reads one answer; a refusal is an error wrapping
// ErrRemote.
func ReadConsistencyResponse(r io.Reader) (ConsistencyResponse, error) {
	var status [1]byte
	if _, err := io.ReadFull(r, status[:]); err != nil {
		return ConsistencyResponse{}, fmt.Errorf("%w: response status: %v", ErrMalformed, err)
	}
	switch status[0] {
	case statusOK:
	case statusError:
		var n [1]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return ConsistencyResponse{}, fmt.Errorf("%w: error length: %v", ErrMalformed, err)
		}
		msg := make([]byte, n[0])
		if _, err := io.ReadFull(r, msg); err != nil {
			return ConsistencyResponse{}, fmt.Errorf("%w: error text: %v", ErrMalformed, err)
		}
		return ConsistencyResponse{}, fmt.Errorf("%w: %q", ErrRemote, msg)
	default:
		return ConsistencyResponse{}, fmt.Errorf("%w: status %d", ErrMalformed, status[0])
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

// handleStream answers one consistency request from a log this node keeps.
func (m *MeshLog) handleStream(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(streamTimeout))
	req, err := ReadConsistencyRequest(bufio.NewReader(io.LimitReader(s, 2+255+16)))
	if err != nil {
		_ = s.Reset()
		return
	}
	resp, err := m.consistency(req)
	_ = writeResponse(s, resp, err)
}

// fetchConsistency asks peer p for a consistency proof of origin's log.
func fetchConsistency(ctx context.Context, h host.Host, p peer.ID, req ConsistencyRequest) (ConsistencyResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, streamTimeout)
	defer cancel()
	b, err := req.Encode()
	if err != nil {
		return ConsistencyResponse{}, err
	}
	s, err := h.NewStream(ctx, p, ProtocolID)
	if err != nil {
		return ConsistencyResponse{}, err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if _, err := s.Write(b); err != nil {
		_ = s.Reset()
		return ConsistencyResponse{}, err
	}
	_ = s.CloseWrite()
	return ReadConsistencyResponse(bufio.NewReader(io.LimitReader(s, 1+32+1+maxProofHashes*32)))
}

package inventory

import (
	"bufio"
	"context"
	"errors"
	"io"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/bitmesh/bitmesh/antispam"
)

// handleStream answers one request. The node bounds how many run at once
// and for how long (streamLimits); a malformed request scores the peer.
func (x *Inventory) handleStream(s network.Stream) {
	defer s.Close()
	p := s.Conn().RemotePeer()
	req, err := ReadRequest(bufio.NewReader(io.LimitReader(s, MaxRequestSize)))
	if err != nil {
		_ = s.Reset()
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isStreamError(err) {
			x.count(func(c *Counters) { c.InvMalformed++ })
			x.penalise(p, antispam.Malformed)
		}
		return
	}
	if req.Kind == KindInv {
		x.handleInv(p, req.IDs)
		return
	}
	if req.Kind == KindGetData {
		x.serveChunks(s, req)
		return
	}
	w := bufio.NewWriterSize(s, 64<<10)
	defer w.Flush()
	id := req.IDs[0]
	if !x.store.Complete(id) {
		_ = w.WriteByte(StatusNotFound)
		return
	}
	switch req.Kind {
	case KindGetManifest:
		_, raw, err := x.store.Manifest(id)
		if err != nil {
			_ = w.WriteByte(StatusNotFound)
			return
		}
		n, _ := w.Write(AppendManifestAnswer(nil, raw))
		x.count(func(c *Counters) { c.ServedBytes += uint64(n) })
	case KindGetLeaves:
		n, _ := w.Write(AppendLeavesAnswer(nil, x.store.Leaves(id)))
		x.count(func(c *Counters) { c.ServedBytes += uint64(n) })
	}
}

// serveChunks answers a getdata: each chunk read into one buffer behind
// its header and written in one piece (one chunk in memory at a time),
// within ServeRate. An object not here, or a chunk past its end, ends the
// answer with notfound.
func (x *Inventory) serveChunks(w io.Writer, req Request) {
	id := req.IDs[0]
	m, _, err := x.store.Manifest(id)
	if err != nil || !x.store.Complete(id) {
		_, _ = w.Write([]byte{StatusNotFound})
		return
	}
	const header = 5 // AppendChunkHeader's length
	buf := make([]byte, header+m.ChunkSize)
	for i := req.First; i < req.First+uint32(req.Count); i++ {
		chunk, err := x.store.ReadChunk(id, i, buf[header:])
		if err != nil {
			_, _ = w.Write([]byte{StatusNotFound})
			return
		}
		if x.serve != nil {
			ctx, cancel := context.WithTimeout(context.Background(), streamLimits.Timeout)
			err := x.serve.WaitN(ctx, len(chunk))
			cancel()
			if err != nil {
				return
			}
		}
		AppendChunkHeader(buf[:0], len(chunk))
		if _, err := w.Write(buf[:header+len(chunk)]); err != nil {
			return
		}
		x.count(func(c *Counters) {
			c.ServedChunks++
			c.ServedBytes += uint64(header + len(chunk))
		})
	}
}

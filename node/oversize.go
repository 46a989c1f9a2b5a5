package node

import (
	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Scoring peers that send GossipSub RPCs over the size limit.
//
// pubsub (v0.19, comm.go handleNewStream) reads each inbound RPC with a
// msgio varint reader bounded by WithMaxMessageSize. For a longer RPC the
// reader returns ErrMsgTooLarge after the length prefix, and pubsub resets
// the stream, logs at debug level and calls no tracer: the peer is never
// scored and may open a new stream and do it again. So the node watches
// the frames itself: GossipSub gets the host through meteredHost, whose
// stream handlers read through an rpcMeter.
//
// What one oversize RPC costs the node before the drop: reading its
// length prefix (at most 9 bytes, one at a time), no allocation for the
// body (msgio checks the length first), and a stream reset. But the body
// bytes the sender pushed before the reset arrived (up to the stream's
// receive window: yamux starts at 256 KiB, QUIC allows up to 10 MiB) are
// received and discarded, and each new stream costs a goroutine, a
// protocol negotiation and two events in pubsub's loop. Scoring it as
// antispam.Oversize (persistent 50 of a ban threshold of 100 by default)
// bans the peer on its second one, and the ban disconnects it.

// maxRPCSize bounds one GossipSub RPC the node reads: an envelope of
// gossip.MaxEnvelopeSize and the RPC framing around it.
const maxRPCSize = gossip.MaxEnvelopeSize + 1024

// meteredHost is the host as GossipSub sees it: the stream handlers
// GossipSub registers (one per protocol version it speaks) read through
// an rpcMeter. Everything else is the node's host, whether the node made
// it or it came from WithHost.
type meteredHost struct {
	host.Host
	n *Node
}

func (h meteredHost) SetStreamHandler(id protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(id, h.n.meterRPCs(handler))
}

func (h meteredHost) SetStreamHandlerMatch(id protocol.ID, match func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(id, match, h.n.meterRPCs(handler))
}

// meterRPCs wraps a GossipSub stream handler so that every oversize RPC
// on its streams is scored against the sending peer.
func (n *Node) meterRPCs(handler network.StreamHandler) network.StreamHandler {
	return func(s network.Stream) {
		from := s.Conn().RemotePeer()
		handler(&rpcMeter{Stream: s, max: maxRPCSize, hold: n.in.hold, onOversize: func() {
			n.log.Debug("oversize gossipsub rpc", "from", from)
			n.penalise(n.peerSubject(from), antispam.Oversize)
		}})
	}
}

// rpcMeter follows the varint-length-prefixed RPC frames read from an
// inbound GossipSub stream and calls onOversize once for a frame whose
// length exceeds max, after which pubsub reads no more of the stream. For
// frames within the limit it only does arithmetic on each Read: no lock,
// no allocation, no ledger.
//
// Its frame state is touched only by Read, which pubsub calls from one
// goroutine per stream; the other methods are the stream's own.
type rpcMeter struct {
	network.Stream
	max        uint64
	onOversize func()
	hold       func() // waits while the node's validation lags (inflow.go)

	body   uint64 // bytes of the current frame still to come
	length uint64 // the length prefix decoded so far
	shift  uint   // bits of length decoded so far
	over   bool   // an oversize frame was seen: nothing more is followed
}

func (m *rpcMeter) Read(p []byte) (int, error) {
	if m.hold != nil {
		m.hold()
	}
	n, err := m.Stream.Read(p)
	m.follow(p[:n])
	return n, err
}

// follow advances the frame state over b, the next bytes of the stream.
func (m *rpcMeter) follow(b []byte) {
	for len(b) > 0 && !m.over {
		if m.body > 0 {
			k := min(m.body, uint64(len(b)))
			m.body -= k
			b = b[k:]
			continue
		}
		c := b[0]
		b = b[1:]
		m.length |= uint64(c&0x7f) << m.shift
		m.shift += 7
		switch {
		case c&0x80 == 0:
			m.body, m.length, m.shift = m.length, 0, 0
			if m.body > m.max {
				m.over = true
			}
		case m.shift >= 63:
			// A prefix longer than any length pubsub decodes (63 bits):
			// pubsub drops it too, and it announces more than max.
			m.over = true
		}
		if m.over {
			m.onOversize()
		}
	}
}

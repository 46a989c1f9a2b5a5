package node

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bitmesh/bitmesh/node/ext"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// Every stream protocol a node serves, its own and its extensions', is
// registered through handleStream, so that one peer cannot hold more than
// a few of its streams open, all peers together no more than a bound, and
// no stream longer than its timeout: the handler's largest answer times
// Total is then the most memory the protocol can be made to hold
// (PROTOCOL.md §18.3 lists the bounds).

// admissionStreams bounds /bitmesh/admission/1.0.0: one exchange per
// connection, so two at once from one peer is already a spare.
func (n *Node) admissionStreams() ext.StreamLimits {
	return ext.StreamLimits{PerPeer: 2, Total: 64, Timeout: n.cfg.AdmissionTimeout}
}

// streamGate counts the running streams of one protocol.
type streamGate struct {
	lim ext.StreamLimits // set at creation, never modified

	mu      sync.Mutex // guards total and perPeer
	total   int
	perPeer map[peer.ID]int

	refused atomic.Uint64 // streams reset for exceeding a limit
}

func (g *streamGate) enter(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.total >= g.lim.Total || g.perPeer[p] >= g.lim.PerPeer {
		return false
	}
	g.total++
	g.perPeer[p]++
	return true
}

func (g *streamGate) leave(p peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total--
	if g.perPeer[p]--; g.perPeer[p] == 0 {
		delete(g.perPeer, p)
	}
}

// handleStream registers handler for id on the node's host behind a
// streamGate with lim. The node is started: n.host is set.
func (n *Node) handleStream(id protocol.ID, lim ext.StreamLimits, handler network.StreamHandler) error {
	if err := lim.Validate(); err != nil {
		return err
	}
	g := &streamGate{lim: lim, perPeer: make(map[peer.ID]int)}
	n.streamsMu.Lock()
	n.streams[id] = g
	n.streamsMu.Unlock()
	n.host.SetStreamHandler(id, func(s network.Stream) {
		p := s.Conn().RemotePeer()
		if !g.enter(p) {
			g.refused.Add(1)
			n.log.Debug("stream refused: too many at once", "protocol", id, "peer", p)
			_ = s.Reset()
			return
		}
		defer g.leave(p)
		_ = s.SetDeadline(time.Now().Add(lim.Timeout))
		handler(s)
	})
	return nil
}

// StreamsRefused returns, per stream protocol the node serves, how many
// inbound streams it reset because a peer or all peers together had too
// many open.
func (n *Node) StreamsRefused() map[protocol.ID]uint64 {
	n.streamsMu.Lock()
	defer n.streamsMu.Unlock()
	out := make(map[protocol.ID]uint64, len(n.streams))
	for id, g := range n.streams {
		out[id] = g.refused.Load()
	}
	return out
}

// streamMemory is the memory a resource-manager scope of one of our
// protocols may reserve per stream (yamux and QUIC reserve their receive
// windows against it).
const streamMemory = 1 << 20

// resourceManager is libp2p's default resource manager (its own
// services' limits, scaled to the machine) with a protocol scope and a
// per-peer protocol scope for each of the node's stream protocols, sized
// from their StreamLimits: a protocol's streams, however many peers open
// them, never take more than its share.
func resourceManager(protos map[protocol.ID]ext.StreamLimits) (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	for id, lim := range protos {
		limits.AddProtocolLimit(id,
			rcmgr.BaseLimit{StreamsInbound: lim.Total, StreamsOutbound: lim.Total, Streams: 2 * lim.Total, Memory: int64(2*lim.Total) * streamMemory},
			rcmgr.BaseLimitIncrease{})
		limits.AddProtocolPeerLimit(id,
			rcmgr.BaseLimit{StreamsInbound: lim.PerPeer, StreamsOutbound: lim.PerPeer, Streams: 2 * lim.PerPeer, Memory: int64(2*lim.PerPeer) * streamMemory},
			rcmgr.BaseLimitIncrease{})
	}
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
}

// streamProtocols are the stream protocols this node will serve, with
// their limits: its own and those its extensions declare (ext.Streams).
func (n *Node) streamProtocols() map[protocol.ID]ext.StreamLimits {
	out := map[protocol.ID]ext.StreamLimits{}
	if n.adm != nil {
		out[AdmissionProtocol] = n.admissionStreams()
	}
	for _, e := range n.opts.extensions {
		if s, ok := e.(ext.Streams); ok {
			maps.Copy(out, s.Streams())
		}
	}
	return out
}

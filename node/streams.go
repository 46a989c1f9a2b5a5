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
	lim     ext.StreamLimits // set at creation, never modified
	refused *atomic.Uint64   // shared with the resource manager's reporter

	mu      sync.Mutex // guards total and perPeer
	total   int
	perPeer map[peer.ID]int
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
	g := &streamGate{lim: lim, refused: n.refusals(id), perPeer: make(map[peer.ID]int)}
	n.host.SetStreamHandler(id, func(s network.Stream) {
		p := s.Conn().RemotePeer()
		// The connection gater keeps banned peers out, but a stream on a
		// connection made before the ban, or on a transport that bypasses
		// the gater, must not reach a handler either.
		if n.peerBanned(p) {
			g.refused.Add(1)
			_ = s.Reset()
			return
		}
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

// refusals returns the refusal counter of protocol id, made on first use.
func (n *Node) refusals(id protocol.ID) *atomic.Uint64 {
	n.streamsMu.Lock()
	defer n.streamsMu.Unlock()
	c, ok := n.streamRefusals[id]
	if !ok {
		c = new(atomic.Uint64)
		n.streamRefusals[id] = c
	}
	return c
}

// StreamsRefused returns, per stream protocol the node serves, how many
// streams it refused because a peer or all peers together had too many
// open: in the resource manager's scopes or in the handler's gate.
func (n *Node) StreamsRefused() map[protocol.ID]uint64 {
	n.streamsMu.Lock()
	defer n.streamsMu.Unlock()
	out := make(map[protocol.ID]uint64, len(n.streamRefusals))
	for id, c := range n.streamRefusals {
		out[id] = c.Load()
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
// them, never take more than its share. memory is Config.ResourceMemory.
func resourceManager(protos map[protocol.ID]ext.StreamLimits, memory int64, opts ...rcmgr.Option) (network.ResourceManager, error) {
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(resourceLimits(protos, memory)), opts...)
}

func resourceLimits(protos map[protocol.ID]ext.StreamLimits, memory int64) rcmgr.ConcreteLimitConfig {
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
	if memory > 0 {
		return limits.Scale(memory, 0) // 0: the base file-descriptor limits
	}
	return limits.AutoScale()
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

// refusalReporter counts the streams of the node's protocols that the
// resource manager blocks, with the handler gate's refusals. Every other
// event is libp2p's to count.
type refusalReporter struct{ n *Node }

var _ rcmgr.MetricsReporter = refusalReporter{}

func (r refusalReporter) BlockProtocol(proto protocol.ID) { r.count(proto) }
func (r refusalReporter) BlockProtocolPeer(proto protocol.ID, _ peer.ID) {
	r.count(proto)
}

func (r refusalReporter) count(proto protocol.ID) {
	r.n.streamsMu.Lock()
	c := r.n.streamRefusals[proto]
	r.n.streamsMu.Unlock()
	if c != nil {
		c.Add(1)
	}
}

func (refusalReporter) AllowConn(network.Direction, bool)      {}
func (refusalReporter) BlockConn(network.Direction, bool)      {}
func (refusalReporter) AllowStream(peer.ID, network.Direction) {}
func (refusalReporter) BlockStream(peer.ID, network.Direction) {}
func (refusalReporter) AllowPeer(peer.ID)                      {}
func (refusalReporter) BlockPeer(peer.ID)                      {}
func (refusalReporter) AllowProtocol(protocol.ID)              {}
func (refusalReporter) AllowService(string)                    {}
func (refusalReporter) BlockService(string)                    {}
func (refusalReporter) BlockServicePeer(string, peer.ID)       {}
func (refusalReporter) AllowMemory(int)                        {}
func (refusalReporter) BlockMemory(int)                        {}

package sim

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// The simulated network's physics. Links are go-libp2p mocknet links, but
// their latency is not mocknet's: its stream transport holds every write
// of 256 bytes or more until it has arrived before it takes the next, so
// a link carried one message per latency (40 a second on a 25 ms link),
// and GossipSub's outbound queues overflowed under loads a real TCP
// connection carries easily. Mocknet links here carry only bandwidth;
// latency and loss are a delay line in front of each stream
// (delayedStream), which keeps any number of writes in flight, in order.

// wires links hosts and remembers each link's one-way latency.
type wires struct {
	mn   mocknet.Mocknet
	link Link

	mu      sync.RWMutex
	latency map[[2]peer.ID]time.Duration
}

func newWires(mn mocknet.Mocknet, link Link) *wires {
	return &wires{mn: mn, link: link, latency: map[[2]peer.ID]time.Duration{}}
}

func pair(a, b peer.ID) [2]peer.ID {
	if b < a {
		a, b = b, a
	}
	return [2]peer.ID{a, b}
}

// connect links a and b and connects them.
func (w *wires) connect(a, b peer.ID, latency time.Duration) error {
	l, err := w.mn.LinkPeers(a, b)
	if err != nil {
		return err
	}
	l.SetOptions(mocknet.LinkOptions{Bandwidth: w.link.BandwidthMbps * 1e6 / 8})
	w.mu.Lock()
	w.latency[pair(a, b)] = latency
	w.mu.Unlock()
	_, err = w.mn.ConnectPeers(a, b)
	return err
}

// cut disconnects and unlinks a and b.
func (w *wires) cut(a, b peer.ID) {
	_ = w.mn.DisconnectPeers(a, b)
	_ = w.mn.UnlinkPeers(a, b)
}

func (w *wires) latencyOf(a, b peer.ID) time.Duration {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.latency[pair(a, b)]
}

// segmentSize is a TCP segment's payload on a 1500-byte MTU.
const segmentSize = 1448

// minRTO is Linux's floor for the retransmission timeout; with a steady
// round trip its RTO is about RTT + minRTO.
const minRTO = 200 * time.Millisecond

// sendBuffer bounds the bytes a stream holds in flight; a write beyond it
// waits, as a write to a full TCP send buffer does.
const sendBuffer = 4 << 20

// simHost puts a delay line in front of every stream a simulated host
// opens or accepts through it (the libp2p host's own identify and ping
// streams bypass it), and fixes a mocknet race.
//
// Packet loss: streams are reliable, as TCP and QUIC streams are to
// GossipSub, so a lost packet is not a lost message: it is a message that
// arrives one retransmission timeout late, holding back everything behind
// it on the stream. Each segment of a write is lost with probability
// loss, and each loss adds the link's RTO to its arrival.
//
// Closed connections: mocknet's Conn.NewStream does not check whether the
// connection is closing, so a stream opened while a ban's ClosePeer tears
// the connection down is left on neither end's list, is never reset, and
// its writer blocks forever on a pipe nobody reads (the synctest bubble
// then cannot end). A stream that comes back on a closed connection is
// reset here: teardown sets the closed flag before it collects the
// streams to reset, so every stream it missed is one this check sees.
type simHost struct {
	host.Host
	ctx   context.Context // the run: queued writes are dropped when it ends
	w     *wires
	loss  float64
	seed  uint64
	count atomic.Uint64 // streams wrapped, to seed each one's losses
}

func (h *simHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	if s.Conn().IsClosed() {
		_ = s.Reset()
		return nil, network.ErrReset
	}
	return h.wrap(s), nil
}

func (h *simHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, func(s network.Stream) { handler(h.wrap(s)) })
}

func (h *simHost) SetStreamHandlerMatch(pid protocol.ID, match func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, match, func(s network.Stream) { handler(h.wrap(s)) })
}

func (h *simHost) wrap(s network.Stream) *delayedStream {
	latency := h.w.latencyOf(h.ID(), s.Conn().RemotePeer())
	d := &delayedStream{Stream: s, ctx: h.ctx, latency: latency, loss: h.loss, rto: 2*latency + minRTO,
		rng: rand.New(rand.NewPCG(h.seed, h.count.Add(1))), reset: make(chan struct{})}
	d.cond = sync.NewCond(&d.mu)
	return d
}

// delayedStream delivers each write at its arrival time: the link's
// latency, plus one RTO per lost segment, and never before an earlier
// write. A goroutine delivers the queue while it is not empty.
type delayedStream struct {
	network.Stream
	ctx     context.Context
	latency time.Duration
	loss    float64
	rto     time.Duration

	mu       sync.Mutex
	cond     *sync.Cond // queue drained or space freed
	rng      *rand.Rand
	queue    []delayedWrite
	queued   int       // bytes in queue
	last     time.Time // arrival of the newest write
	draining bool
	err      error         // from the stream; later writes fail with it
	reset    chan struct{} // closed by Reset: drop the queue
	resetted bool
}

type delayedWrite struct {
	at   time.Time
	data []byte
}

func (s *delayedStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.err == nil && s.queued > 0 && s.queued+len(p) > sendBuffer {
		s.cond.Wait()
	}
	if s.err != nil {
		return 0, s.err
	}
	at := time.Now().Add(s.latency + s.lossDelay(len(p)))
	if at.Before(s.last) {
		at = s.last
	}
	s.last = at
	s.queue = append(s.queue, delayedWrite{at: at, data: append([]byte(nil), p...)})
	s.queued += len(p)
	if !s.draining {
		s.draining = true
		go s.drain()
	}
	return len(p), nil
}

// lossDelay is how long the segments of an n-byte write wait for
// retransmission: one RTO per lost segment. Callers hold mu.
func (s *delayedStream) lossDelay(n int) time.Duration {
	var d time.Duration
	if s.loss == 0 {
		return 0
	}
	for range (n + segmentSize - 1) / segmentSize {
		if s.rng.Float64() < s.loss {
			d += s.rto
		}
	}
	return d
}

func (s *delayedStream) drain() {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		s.mu.Lock()
		if len(s.queue) == 0 || s.err != nil {
			s.draining = false
			s.cond.Broadcast()
			s.mu.Unlock()
			return
		}
		next := s.queue[0]
		s.mu.Unlock()

		t.Reset(time.Until(next.at))
		var err error
		select {
		case <-t.C:
			_, err = s.Stream.Write(next.data)
		case <-s.reset:
			err = network.ErrReset
		case <-s.ctx.Done():
			err = s.ctx.Err()
		}

		s.mu.Lock()
		if err != nil && s.err == nil {
			s.err = err
		}
		s.queue[0] = delayedWrite{}
		s.queue = s.queue[1:]
		s.queued -= len(next.data)
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

// flush waits until every queued write has been delivered or failed.
func (s *delayedStream) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.draining {
		s.cond.Wait()
	}
}

func (s *delayedStream) CloseWrite() error {
	s.flush()
	return s.Stream.CloseWrite()
}

func (s *delayedStream) Close() error {
	s.flush()
	return s.Stream.Close()
}

func (s *delayedStream) Reset() error {
	s.stop()
	return s.Stream.Reset()
}

func (s *delayedStream) ResetWithError(code network.StreamErrorCode) error {
	s.stop()
	return s.Stream.ResetWithError(code)
}

func (s *delayedStream) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.resetted {
		s.resetted = true
		close(s.reset)
	}
	if s.err == nil {
		s.err = network.ErrReset
	}
	s.cond.Broadcast()
}

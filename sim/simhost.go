package sim

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
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
	mn        mocknet.Mocknet
	bandwidth float64 // bytes per second; 0 is unlimited

	mu      sync.RWMutex
	latency map[[2]peer.ID]time.Duration
}

func newWires(mn mocknet.Mocknet, link Link) *wires {
	return &wires{mn: mn, bandwidth: link.BandwidthMbps * 1e6 / 8, latency: map[[2]peer.ID]time.Duration{}}
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
	l.SetOptions(mocknet.LinkOptions{Latency: mocknetLatency, Bandwidth: w.bandwidth})
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

// mocknetLatency is the in-memory link's own latency, under the delay
// line's. With zero, mocknet re-arms a zero-length timer on every write,
// and under -race that crashed the runtime inside synctest bubbles
// (SIGSEGV in timer.maybeRunChan; Go issue 78156 is a relative).
const mocknetLatency = time.Microsecond

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
	cm    connmgr.ConnManager // nil: mocknet's, which keeps every connection
	ctx   context.Context     // the run: queued writes are dropped when it ends
	w     *wires
	loss  float64
	seed  uint64
	count atomic.Uint64 // streams wrapped, to seed each one's losses
}

// ConnManager is the scenario's connection manager (NodeSettings.ConnHigh),
// which mocknet's hosts cannot be given.
func (h *simHost) ConnManager() connmgr.ConnManager {
	if h.cm != nil {
		return h.cm
	}
	return h.Host.ConnManager()
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
		rng:  rand.New(rand.NewPCG(h.seed, h.count.Add(1))),
		kick: make(chan struct{}, 1), reset: make(chan struct{}), done: make(chan struct{})}
	d.space = sync.NewCond(&d.mu)
	return d
}

// errWriteAfterClose is what a write after Close gets.
var errWriteAfterClose = errors.New("sim: write on a closed stream")

// delayedStream delivers each write at its arrival time: the link's
// latency, plus one RTO per lost segment, and never before an earlier
// write. One goroutine per stream, started by its first write, delivers
// the queue until the stream is closed or reset or the run ends.
type delayedStream struct {
	network.Stream
	ctx     context.Context
	latency time.Duration
	loss    float64
	rto     time.Duration

	mu      sync.Mutex
	space   *sync.Cond // the queue shrank, or the stream failed
	rng     *rand.Rand
	queue   []delayedWrite
	queued  int       // bytes in queue
	last    time.Time // arrival of the newest write
	started bool      // deliver is running (or has run)
	closing bool      // Close: deliver what is queued, then stop
	err     error     // from the stream; later writes fail with it

	kick      chan struct{} // a write was queued, or closing was set
	reset     chan struct{} // closed by Reset: drop the queue
	resetOnce sync.Once
	done      chan struct{} // closed when deliver returns
}

type delayedWrite struct {
	at   time.Time
	data []byte
}

func (s *delayedStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.err == nil && s.queued > 0 && s.queued+len(p) > sendBuffer {
		s.space.Wait()
	}
	switch {
	case s.err != nil:
		return 0, s.err
	case s.closing:
		return 0, errWriteAfterClose
	}
	at := time.Now().Add(s.latency + s.lossDelay(len(p)))
	if at.Before(s.last) {
		at = s.last
	}
	s.last = at
	s.queue = append(s.queue, delayedWrite{at: at, data: append([]byte(nil), p...)})
	s.queued += len(p)
	if !s.started {
		s.started = true
		go s.deliver()
	}
	s.poke()
	return len(p), nil
}

// poke wakes deliver if it waits for work.
func (s *delayedStream) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
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

// deliver writes each queued write through at its arrival time.
func (s *delayedStream) deliver() {
	defer close(s.done)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		s.mu.Lock()
		err, empty, closing := s.err, len(s.queue) == 0, s.closing
		var next delayedWrite
		if !empty {
			next = s.queue[0]
		}
		s.mu.Unlock()
		switch {
		case err != nil, empty && closing:
			return
		case empty:
			select {
			case <-s.kick:
			case <-s.reset:
				s.fail(network.ErrReset)
			case <-s.ctx.Done():
				s.fail(s.ctx.Err())
			}
			continue
		}

		t.Reset(time.Until(next.at))
		select {
		case <-t.C:
			_, err = s.Stream.Write(next.data)
		case <-s.reset:
			err = network.ErrReset
		case <-s.ctx.Done():
			err = s.ctx.Err()
		}
		s.mu.Lock()
		s.queue[0] = delayedWrite{}
		s.queue = s.queue[1:]
		s.queued -= len(next.data)
		s.space.Broadcast()
		s.mu.Unlock()
		if err != nil {
			s.fail(err)
		}
	}
}

// fail records the stream's first error and wakes blocked writers.
func (s *delayedStream) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
	s.space.Broadcast()
}

// flush delivers (or fails) every queued write and waits for deliver to
// stop.
func (s *delayedStream) flush() {
	s.mu.Lock()
	s.closing = true
	started := s.started
	s.mu.Unlock()
	if started {
		s.poke()
		<-s.done
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

// stop drops the queue: deliver returns, and writes fail.
func (s *delayedStream) stop() {
	s.resetOnce.Do(func() { close(s.reset) })
	s.fail(network.ErrReset)
}

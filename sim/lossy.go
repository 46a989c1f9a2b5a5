package sim

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// Packet loss on the in-memory network. Its streams are reliable, as TCP
// and QUIC streams are to GossipSub, so a lost packet is not a lost
// message: it is a message that arrives one retransmission timeout late,
// holding back everything behind it on the stream. lossyHost models that
// on the streams a node opens (GossipSub sends only on those): every
// segment of a write is lost with probability loss, and each loss delays
// the write by the link's RTO before it enters the link.

// segmentSize is a TCP segment's payload on a 1500-byte MTU.
const segmentSize = 1448

// minRTO is Linux's floor for the retransmission timeout; with a steady
// round trip its RTO is about RTT + minRTO.
const minRTO = 200 * time.Millisecond

type lossyHost struct {
	host.Host
	ctx   context.Context // the run: a delayed write gives up when it ends
	mn    mocknet.Mocknet
	loss  float64
	seed  uint64
	count atomic.Uint64 // streams opened, to seed each one's losses
}

func (h *lossyHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	var rtt time.Duration
	if links := h.mn.LinksBetweenPeers(h.ID(), p); len(links) > 0 {
		rtt = 2 * links[0].Options().Latency
	}
	return &lossyStream{Stream: s, ctx: h.ctx, loss: h.loss, rto: rtt + minRTO,
		rng: rand.New(rand.NewPCG(h.seed, h.count.Add(1)))}, nil
}

type lossyStream struct {
	network.Stream
	ctx  context.Context
	loss float64
	rto  time.Duration
	rng  *rand.Rand // Write is not called concurrently on one stream
}

func (s *lossyStream) Write(p []byte) (int, error) {
	if d := s.delay(len(p)); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.ctx.Done():
			return 0, s.ctx.Err()
		}
	}
	return s.Stream.Write(p)
}

// delay is how long the segments of an n-byte write wait for
// retransmission: one RTO per lost segment.
func (s *lossyStream) delay(n int) time.Duration {
	var d time.Duration
	for range (n + segmentSize - 1) / segmentSize {
		if s.rng.Float64() < s.loss {
			d += s.rto
		}
	}
	return d
}

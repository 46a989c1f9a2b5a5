package node

import (
	"sync"
	"time"

	pb "github.com/libp2p/go-libp2p-pubsub/pb"
)

// inflow is the receive side of backpressure. GossipSub reads every
// peer's RPCs as fast as they come and drops what does not fit in its
// validation queue (counted as validate-queue-full); a peer publishing
// faster than this node validates would lose envelopes on the way. So the
// node measures how long received envelopes wait for validation, and while
// that wait is long it reads more slowly from its peers' GossipSub
// streams: TCP (or QUIC) flow control then holds the senders, whose
// outbound queues fill, and a sender's Publish waits for room
// (backpressure.go) instead of anything being dropped.
//
// It fails open: with no envelope validated lately, or after maxPause,
// reading goes on. A hostile peer cannot use it to silence the node: its
// own excess is refused before any decoding (the per-peer rate), which
// keeps the wait short.
type inflow struct {
	mu            sync.Mutex
	arrived       map[*pb.Message]time.Time // by GossipSub's decoded message, until validated
	wait          time.Duration             // how long the latest validated envelope waited
	lastValidated time.Time
}

const (
	// inflowHigh is the validation wait above which reading slows.
	inflowHigh = 100 * time.Millisecond
	// inflowStale: a wait measured longer ago than this says nothing of
	// the queue now: validating one envelope takes a quarter of a
	// millisecond, so with none validated for this long the queue is
	// empty.
	inflowStale = 5 * time.Millisecond
	// inflowPause is one pause of a stream reader; maxPause bounds the
	// pauses before one read.
	inflowPause = 2 * time.Millisecond
	maxPause    = time.Second
	// maxArrivals bounds the arrival times kept: messages GossipSub drops
	// before validation leave theirs behind, so the table is cleared
	// when full (losing a few measurements, no more).
	maxArrivals = 1 << 16
)

func newInflow() *inflow { return &inflow{arrived: make(map[*pb.Message]time.Time)} }

// received records when an RPC's messages arrived (RecvRPC).
func (f *inflow) received(msgs []*pb.Message, now time.Time) {
	if len(msgs) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.arrived)+len(msgs) > maxArrivals {
		clear(f.arrived)
	}
	for _, m := range msgs {
		f.arrived[m] = now
	}
}

// validating records that m left the queue for validation at now.
func (f *inflow) validating(m *pb.Message, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	at, ok := f.arrived[m]
	if !ok {
		return // a local publish, or its arrival was cleared
	}
	delete(f.arrived, m)
	f.wait = now.Sub(at)
	f.lastValidated = now
}

// congested reports whether envelopes lately waited long for validation.
func (f *inflow) congested(now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wait > inflowHigh && now.Sub(f.lastValidated) < inflowStale
}

// hold pauses a stream reader while the node is congested, for at most
// maxPause.
func (f *inflow) hold() {
	for waited := time.Duration(0); waited < maxPause && f.congested(time.Now()); waited += inflowPause {
		time.Sleep(inflowPause)
	}
}

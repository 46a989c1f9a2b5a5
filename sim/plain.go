package sim

import (
	"context"
	"encoding/binary"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
)

// plainPeer is a plain go-libp2p-pubsub GossipSub peer with default
// options: the baseline of BenchmarkPlainVsBitmesh. Defaults mean
// libp2p's own message signing (StrictSign: every message signed with the
// host's key and every received one verified), no peer scoring, no
// flood publishing and no bitmesh envelope.
type plainPeer struct {
	cancel context.CancelFunc
	topic  *pubsub.Topic
}

// startPlain starts a plain GossipSub peer on h subscribed to topic;
// deliver gets the message number of every message another peer
// published. readers tracks the subscription's reader goroutine.
func startPlain(ctx context.Context, h host.Host, topic string, tr pubsub.RawTracer, readers *sync.WaitGroup, deliver func(msg uint64)) (*plainPeer, error) {
	ctx, cancel := context.WithCancel(ctx)
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithRawTracer(tr))
	if err != nil {
		cancel()
		return nil, err
	}
	t, err := ps.Join(topic)
	if err != nil {
		cancel()
		return nil, err
	}
	sub, err := t.Subscribe()
	if err != nil {
		cancel()
		return nil, err
	}
	readers.Add(1)
	go func() {
		defer readers.Done()
		defer sub.Cancel()
		for {
			m, err := sub.Next(ctx)
			if err != nil {
				return
			}
			if m.ReceivedFrom != h.ID() && len(m.Data) >= 8 {
				deliver(binary.BigEndian.Uint64(m.Data))
			}
		}
	}()
	return &plainPeer{cancel: cancel, topic: t}, nil
}

// close stops the peer's GossipSub (it ends with its context).
func (p *plainPeer) close() { p.cancel() }

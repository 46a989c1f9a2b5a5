package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/node/ext"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// WithExtension runs e inside the node: Start starts it once GossipSub is
// up, Close closes it first. Extensions start in the order given.
func WithExtension(e ext.Extension) Option {
	return func(o *options) error {
		if e == nil {
			return errors.New("node: WithExtension: nil extension")
		}
		o.extensions = append(o.extensions, e)
		return nil
	}
}

// extHost is the ext.Host a node hands its extensions.
type extHost struct{ n *Node }

var _ ext.Host = extHost{}

func (x extHost) Libp2p() host.Host                                    { return x.n.Host() }
func (x extHost) Key() *identity.PrivateKey                            { return x.n.key }
func (x extHost) NetworkName() string                                  { return x.n.cfg.Network }
func (x extHost) Now() time.Time                                       { return x.n.clock() }
func (x extHost) Logger() *slog.Logger                                 { return x.n.log }
func (x extHost) DataDir() string                                      { return x.n.cfg.DataDir }
func (x extHost) Go(f func(ctx context.Context))                       { x.n.goIfRunning(f) }
func (x extHost) Penalise(s antispam.Subject, m antispam.Misbehaviour) { x.n.penalise(s, m) }

func (x extHost) Standing(d identity.DeviceID) ext.Standing { return x.n.standing(d) }

func (x extHost) HandleStream(id protocol.ID, lim ext.StreamLimits, h network.StreamHandler) error {
	return x.n.handleStream(id, lim, h)
}

func (x extHost) Admit(from peer.ID, topic string, raw []byte, committedAt time.Time) (*gossip.Envelope, error) {
	if committedAt.IsZero() {
		return nil, errors.New("node: Admit needs the time its checkpoint was accepted")
	}
	r := x.n.admit(x.n.clock(), from, topic, raw, committedAt)
	if r.Verdict != gossip.Accept {
		return nil, r.Err
	}
	return r.Envelope, nil
}

func (x extHost) Publish(ctx context.Context, topic string, payload []byte) (gossip.ID, error) {
	return x.n.Publish(ctx, topic, payload)
}

func (x extHost) Seal(ctx context.Context, topic string, payload []byte) ([]byte, gossip.ID, error) {
	return x.n.Seal(ctx, topic, payload)
}

func (x extHost) PublishSealed(ctx context.Context, topic string, raw []byte) (gossip.ID, error) {
	return x.n.PublishSealed(ctx, topic, raw)
}

func (x extHost) Subscribe(topic string, buffer int, deliver func(ext.Delivery)) (func(), error) {
	if deliver == nil {
		return nil, errors.New("node: Subscribe: nil deliver")
	}
	sub, err := x.n.Subscribe(topic, WithBuffer(buffer))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	x.n.goIfRunning(func(nctx context.Context) {
		stop := context.AfterFunc(nctx, cancel)
		defer stop()
		for {
			m, err := sub.sub.Next(ctx)
			if err != nil {
				return
			}
			env, ok := m.ValidatorData.(*gossip.Envelope)
			if !ok {
				continue
			}
			deliver(ext.Delivery{ID: gossip.IDFromPubSubMessageID(m.ID), Envelope: env, From: m.ReceivedFrom, Local: m.ReceivedFrom == sub.self})
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			sub.Cancel()
		})
	}, nil
}

// Watch joins topic, subscribes so that GossipSub delivers its envelopes
// to this node, and routes them through hook. The subscription only keeps
// the topic's messages flowing: hook.Accepted is called from the validator,
// so a slow reader cannot make it miss any.
func (x extHost) Watch(topic string, hook ext.TopicHook) error {
	n := x.n
	n.hooksMu.Lock()
	if _, dup := n.hooks[topic]; dup {
		n.hooksMu.Unlock()
		return fmt.Errorf("node: topic %q is already watched", topic)
	}
	n.hooks[topic] = hook
	n.hooksMu.Unlock()
	sub, err := n.Subscribe(topic)
	if err != nil {
		n.hooksMu.Lock()
		delete(n.hooks, topic)
		n.hooksMu.Unlock()
		return err
	}
	n.goIfRunning(func(ctx context.Context) {
		defer sub.Cancel()
		for {
			if _, err := sub.Next(ctx); err != nil {
				return
			}
		}
	})
	return nil
}

// topicHook returns the extension hook watching topic, if any.
func (n *Node) topicHook(topic string) (ext.TopicHook, bool) {
	n.hooksMu.RLock()
	defer n.hooksMu.RUnlock()
	h, ok := n.hooks[topic]
	return h, ok
}

// startExtensions starts the configured extensions in order. Called
// without n.mu, once the node is started.
func (n *Node) startExtensions() error {
	for _, e := range n.opts.extensions {
		if err := e.Start(extHost{n}); err != nil {
			return fmt.Errorf("node: extension %s: %w", e.Name(), err)
		}
		n.mu.Lock()
		n.extensions = append(n.extensions, e)
		n.mu.Unlock()
	}
	return nil
}

// closeExtensions closes the started extensions in reverse order. Called
// without n.mu: an extension's Close may call back into the node.
func (n *Node) closeExtensions() error {
	n.mu.Lock()
	started := n.extensions
	n.mu.Unlock()
	var errs []error
	for i := len(started) - 1; i >= 0; i-- {
		if err := started[i].Close(); err != nil {
			errs = append(errs, fmt.Errorf("node: extension %s: %w", started[i].Name(), err))
		}
	}
	return errors.Join(errs...)
}

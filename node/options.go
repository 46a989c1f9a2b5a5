package node

import (
	"errors"

	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/node/ext"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
)

// Option customises a Node beyond its Config.
type Option func(*options) error

type options struct {
	host     host.Host
	libp2p   []libp2p.Option
	observer gossip.Observer
	pubsub   []pubsub.Option

	sharedSignatures *gossip.SignatureCache

	extensions []ext.Extension
}

// WithPubSubOptions appends options to those the node passes to
// pubsub.NewGossipSub (a tracer, say). Options that change message IDs,
// signing or validation break the mesh's invariants.
func WithPubSubOptions(opts ...pubsub.Option) Option {
	return func(o *options) error {
		o.pubsub = append(o.pubsub, opts...)
		return nil
	}
}

// WithHost runs the node on a host the caller made (an in-memory host in a
// simulation, say). The host's key must be the node's key. The node does not
// close it.
func WithHost(h host.Host) Option {
	return func(o *options) error {
		if h == nil {
			return errors.New("node: WithHost: nil host")
		}
		o.host = h
		return nil
	}
}

// WithLibp2pOptions appends options to those the node passes to libp2p.New.
// The node sets libp2p's resource manager itself (with a scope for each of
// its stream protocols); another one here fails New.
func WithLibp2pOptions(opts ...libp2p.Option) Option {
	return func(o *options) error {
		o.libp2p = append(o.libp2p, opts...)
		return nil
	}
}

// WithObserver receives every validation result. It must not block.
func WithObserver(f gossip.Observer) Option {
	return func(o *options) error {
		if f == nil {
			return errors.New("node: WithObserver: nil observer")
		}
		o.observer = f
		return nil
	}
}

// WithSharedSignatureCache is for simulators only: the node takes
// signature verdicts from c and adds its own to it, so a swarm of
// simulated nodes in one process verifies each envelope's signature once
// (gossip.ValidatorConfig.SharedSignatures). In virtual time a check costs
// CPU but no simulated time, so this changes no outcome. A real node must
// not use it: it would trust whichever node wrote a verdict instead of
// checking every signature itself.
func WithSharedSignatureCache(c *gossip.SignatureCache) Option {
	return func(o *options) error {
		if c == nil {
			return errors.New("node: WithSharedSignatureCache: nil cache")
		}
		o.sharedSignatures = c
		return nil
	}
}

package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// Message is a verified envelope delivered to a subscriber.
type Message struct {
	ID           gossip.ID
	From         identity.DeviceID // the signer
	Topic        string
	Payload      []byte
	Time         time.Time // the signer's timestamp
	Seq          uint64
	ReceivedFrom peer.ID // the forwarding peer (the node itself if Local)
	Local        bool    // published by this node
}

// PublishOption customises one Publish.
type PublishOption func(*publishOptions)

type publishOptions struct{ minPeers int }

// WithMinPeers makes Publish wait (bounded by its ctx) until at least n peers
// subscribe to the topic, so the first message of a fresh node is not sent
// to nobody.
func WithMinPeers(n int) PublishOption { return func(o *publishOptions) { o.minPeers = n } }

// Publish signs payload into an envelope on topic and gossips it. It returns
// the envelope ID once GossipSub has the envelope. Safe for concurrent
// access. Nothing is sent when it fails, in particular with:
//
//   - a *RateLimitError (ErrPublishRate) beyond the per-device rate the
//     node's peers enforce, saying when to retry;
//   - ErrNoTopicPeers when WithMinPeers peers are not there before ctx ends;
//   - ErrCongested when every topic peer's outbound queue stays over half
//     full until ctx ends;
//   - the reason the node's own receive path refused it (a banned device,
//     a full log, …).
//
// A publish that fails before reaching GossipSub gives its rate token
// back.
func (n *Node) Publish(ctx context.Context, topic string, payload []byte, opts ...PublishOption) (gossip.ID, error) {
	var o publishOptions
	for _, opt := range opts {
		opt(&o)
	}
	t, release, err := n.useTopic(topic)
	if err != nil {
		return gossip.ID{}, err
	}
	defer release()
	now := n.clock()
	if size := (&gossip.Envelope{Topic: topic, Payload: payload}).EncodedSize(); size > n.cfg.MaxEnvelopeSize {
		return gossip.ID{}, fmt.Errorf("node: envelope of %d bytes exceeds MaxEnvelopeSize %d", size, n.cfg.MaxEnvelopeSize)
	}
	// The token first: a publish over the budget costs no signature.
	token, err := n.takePublishToken(now)
	if err != nil {
		return gossip.ID{}, fmt.Errorf("node: publish on %q: %w", topic, err)
	}
	raw, id, err := n.seal(ctx, now, topic, payload)
	if err != nil {
		if token != nil {
			token.CancelAt(now)
		}
		return gossip.ID{}, err
	}
	return n.send(ctx, now, t, topic, raw, id, token, o)
}

// Seal builds, mints and signs the envelope Publish would send for
// payload on topic, and returns its canonical encoding and ID without
// sending it. A caller that must publish the same envelope again after a
// crash (a journal, an MQTT gateway) keeps raw and hands it to
// PublishSealed: every node drops the second copy by its ID, so it is
// never a second message. Safe for concurrent access.
func (n *Node) Seal(ctx context.Context, topic string, payload []byte) ([]byte, gossip.ID, error) {
	if err := gossip.ValidTopic(topic); err != nil {
		return nil, gossip.ID{}, err
	}
	return n.seal(ctx, n.clock(), topic, payload)
}

func (n *Node) seal(ctx context.Context, now time.Time, topic string, payload []byte) ([]byte, gossip.ID, error) {
	env := &gossip.Envelope{Network: n.network, Time: now, Seq: n.seq.Add(1), Topic: topic, Payload: payload}
	if size := env.EncodedSize(); size > n.cfg.MaxEnvelopeSize {
		return nil, gossip.ID{}, fmt.Errorf("node: envelope of %d bytes exceeds MaxEnvelopeSize %d", size, n.cfg.MaxEnvelopeSize)
	}
	// Mint for this node's own local target: a node that raised it under
	// load would otherwise ignore its own envelope, and peers that raised
	// theirs likely see the same load.
	sealStart := time.Now()
	if _, target := n.def.work.RequiredWork(now, topic); target > 0 {
		env.Sender = n.key.DeviceID() // inside the ID: set before minting
		if err := antispam.MintProofOfWork(ctx, env, target, 0); err != nil {
			return nil, gossip.ID{}, fmt.Errorf("node: publish on %q: %w", topic, err)
		}
	}
	raw, id, err := env.Seal(n.key)
	if err != nil {
		return nil, gossip.ID{}, err
	}
	n.sealTimes.observe(time.Since(sealStart))
	// We just signed it: our own validator need not check the signature.
	n.validator.MarkVerified(now, id, env.Signature)
	return raw, id, nil
}

// PublishSealed gossips raw, an envelope on topic signed by this node
// (Seal) or by another device (a sensor that signs its own readings, which
// a gateway forwards unchanged), with Publish's checks and errors. An
// envelope of this node's device takes a token of its publish budget; one
// of another device does not (its own rate is enforced by every peer).
// Safe for concurrent access.
func (n *Node) PublishSealed(ctx context.Context, topic string, raw []byte, opts ...PublishOption) (gossip.ID, error) {
	var o publishOptions
	for _, opt := range opts {
		opt(&o)
	}
	if len(raw) > n.cfg.MaxEnvelopeSize {
		return gossip.ID{}, fmt.Errorf("node: envelope of %d bytes exceeds MaxEnvelopeSize %d", len(raw), n.cfg.MaxEnvelopeSize)
	}
	env, err := gossip.Decode(raw)
	if err != nil {
		return gossip.ID{}, fmt.Errorf("node: publish on %q: %w", topic, err)
	}
	if env.Topic != topic {
		return gossip.ID{}, fmt.Errorf("node: publish on %q: envelope is for topic %q", topic, env.Topic)
	}
	t, release, err := n.useTopic(topic)
	if err != nil {
		return gossip.ID{}, err
	}
	defer release()
	now := n.clock()
	var token *rate.Reservation
	if env.Sender == n.key.DeviceID() {
		if token, err = n.takePublishToken(now); err != nil {
			return gossip.ID{}, fmt.Errorf("node: publish on %q: %w", topic, err)
		}
	}
	return n.send(ctx, now, t, topic, raw, gossip.MessageID(raw), token, o)
}

// send hands a sealed envelope to GossipSub once the topic has its peers
// and room; token, the publish budget's reservation, is given back if it
// never gets there.
func (n *Node) send(ctx context.Context, now time.Time, t *pubsub.Topic, topic string, raw []byte, id gossip.ID, token *rate.Reservation, o publishOptions) (gossip.ID, error) {
	handed := false
	defer func() {
		if !handed && token != nil {
			token.CancelAt(now)
		}
	}()
	if err := waitTopicPeers(ctx, t, o.minPeers); err != nil {
		return id, fmt.Errorf("node: publish on %q: %w: waiting for %d: %w", topic, ErrNoTopicPeers, o.minPeers, err)
	}
	if err := n.out.wait(ctx, t); err != nil {
		return id, fmt.Errorf("node: publish on %q: %w: %w", topic, ErrCongested, err)
	}
	handed = true // GossipSub has it, even if its validation refuses it
	if err := t.Publish(ctx, raw); err != nil {
		if reason := n.localRefusal(id); reason != nil {
			// The node's own checks refused it: say which, not only
			// GossipSub's "validation ignored".
			err = reason
		}
		return id, fmt.Errorf("node: publish on %q: %w", topic, err)
	}
	return id, nil
}

// takePublishToken takes one envelope from the node's publish budget at
// now, or says when there will be one. Its bucket is the per-device rate
// that every peer applies to this node's device: publishing faster would
// have the device scored by its own neighbours and banned within seconds.
// The token is a reservation to cancel if the envelope never reaches
// GossipSub; nil when there is no limit.
func (n *Node) takePublishToken(now time.Time) (*rate.Reservation, error) {
	if n.def.publish == nil {
		return nil, nil
	}
	r := n.def.publish.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return nil, &RateLimitError{RetryAfter: d}
	}
	return r, nil
}

// waitTopicPeers blocks until t has at least n known subscribers. pubsub's
// own MinTopicSize counts mesh members only, which a publisher that does not
// subscribe never has; topic events work for both.
func waitTopicPeers(ctx context.Context, t *pubsub.Topic, n int) error {
	if n <= 0 || len(t.ListPeers()) >= n {
		return nil
	}
	ev, err := t.EventHandler()
	if err != nil {
		return err
	}
	defer ev.Cancel()
	// Checked after the handler exists, and again at least every
	// topicPeersRecheck: pubsub may emit no second join for a peer whose
	// stream was replaced while its subscription stayed on record, so
	// events alone can wait for good with the peer listed all along.
	for len(t.ListPeers()) < n {
		wait, cancel := context.WithTimeout(ctx, topicPeersRecheck)
		_, err := ev.NextPeerEvent(wait)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
	return nil
}

// topicPeersRecheck bounds how long waitTopicPeers trusts pubsub's events
// alone.
const topicPeersRecheck = 250 * time.Millisecond

// Subscription delivers the verified messages of one topic.
type Subscription struct {
	topic   string
	self    peer.ID
	sub     *pubsub.Subscription
	release func() // ends the subscription's use of the topic; idempotent
}

// DefaultSubscriptionBuffer is how many messages a subscription queues for a
// slow reader before GossipSub drops new ones for it.
const DefaultSubscriptionBuffer = 256

// SubscribeOption customises one Subscribe.
type SubscribeOption func(*subscribeOptions)

type subscribeOptions struct{ buffer int }

// WithBuffer sets how many messages the subscription queues for a slow
// reader; beyond that, new messages are dropped for this subscriber only
// (the mesh still forwards them).
func WithBuffer(n int) SubscribeOption { return func(o *subscribeOptions) { o.buffer = n } }

// Subscribe starts delivering topic's verified messages, including this
// node's own. Cancel the subscription when done.
func (n *Node) Subscribe(topic string, opts ...SubscribeOption) (*Subscription, error) {
	o := subscribeOptions{buffer: DefaultSubscriptionBuffer}
	for _, opt := range opts {
		opt(&o)
	}
	if o.buffer < 1 {
		return nil, fmt.Errorf("node: subscription buffer %d must be positive", o.buffer)
	}
	t, release, err := n.useTopic(topic)
	if err != nil {
		return nil, err
	}
	sub, err := t.Subscribe(pubsub.WithBufferSize(o.buffer))
	if err != nil {
		release()
		return nil, fmt.Errorf("node: subscribe %q: %w", topic, err)
	}
	return &Subscription{topic: topic, self: n.PeerID(), sub: sub, release: release}, nil
}

// Topic returns the subscription's topic.
func (s *Subscription) Topic() string { return s.topic }

// Next blocks until the next message, ctx ends (ctx.Err()) or the
// subscription or node is closed (ErrClosed).
func (s *Subscription) Next(ctx context.Context) (Message, error) {
	m, err := s.sub.Next(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return Message{}, ctx.Err()
		}
		if errors.Is(err, pubsub.ErrSubscriptionCancelled) || errors.Is(err, context.Canceled) {
			return Message{}, ErrClosed
		}
		return Message{}, err
	}
	env, ok := m.ValidatorData.(*gossip.Envelope)
	if !ok {
		// Cannot happen: every bitmesh topic has the envelope validator.
		return Message{}, fmt.Errorf("node: message on %q without a validated envelope", s.topic)
	}
	return Message{
		ID:           gossip.IDFromPubSubMessageID(m.ID),
		From:         env.Sender,
		Topic:        env.Topic,
		Payload:      env.Payload,
		Time:         env.Time,
		Seq:          env.Seq,
		ReceivedFrom: m.ReceivedFrom,
		Local:        m.ReceivedFrom == s.self,
	}, nil
}

// Cancel stops the subscription. Safe to call more than once. Once no
// subscription or publish uses the topic for Config.TopicIdleTimeout, the
// node leaves it.
func (s *Subscription) Cancel() {
	// pubsub handles the cancellation before any later request, so the
	// janitor's close of the released topic sees no subscription.
	s.sub.Cancel()
	s.release()
}

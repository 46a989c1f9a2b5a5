package node

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/gossip"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
)

// Joining and leaving GossipSub topics. A node joins a topic on its first
// Publish or Subscribe; every joined topic holds GossipSub state, so a node
// that publishes once on each of many topics (the control API lets any
// local client do that) would grow without bound if it never left. The
// node counts each topic's users (live subscriptions and publishes in
// flight) and leaves a topic TopicIdleTimeout after its last user went.
// Topics an extension watches keep a subscription for the node's lifetime
// and are never left; the admission topic is not joined through here.

// topicUse counts the users of one joined topic. Guarded by n.mu.
type topicUse struct {
	users     int       // live subscriptions and publishes in flight
	idleSince time.Time // when users last fell to zero
}

// sharedTopicScore is every mesh topic's score parameters. pubsub keeps
// the parameters of each topic ever joined in a map it never prunes (v0.19
// has no call to remove them); sharing one value, which pubsub only reads,
// leaves a map entry per topic rather than a copy each.
var sharedTopicScore = antispam.TopicScoreParams()

// useTopic returns the GossipSub topic, joining it and registering its
// validator on first use, and counts one user of it until release is
// called: a topic with users is never left, so a Publish racing the
// janitor never finds its topic closed. release is idempotent.
func (n *Node) useTopic(topic string) (t *pubsub.Topic, release func(), err error) {
	if err := gossip.ValidTopic(topic); err != nil {
		return nil, nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.closed:
		return nil, nil, ErrClosed
	case !n.started:
		return nil, nil, ErrNotStarted
	}
	if t, err = n.joinLocked(topic); err != nil {
		return nil, nil, err
	}
	if n.topicUses == nil {
		n.topicUses = make(map[string]*topicUse)
	}
	u := n.topicUses[topic]
	if u == nil {
		u = &topicUse{}
		n.topicUses[topic] = u
	}
	u.users++
	var once sync.Once
	return t, func() { once.Do(func() { n.releaseTopic(u) }) }, nil
}

// joinLocked returns the joined GossipSub topic, joining it if needed.
// Callers hold n.mu on a started, open node.
func (n *Node) joinLocked(topic string) (*pubsub.Topic, error) {
	if t, ok := n.topics[topic]; ok {
		return t, nil
	}
	name := n.pubsubTopic(topic)
	// Inline: validation runs on GossipSub's workers (one per core), not
	// on a goroutine spawned per envelope, whose start and stack growth
	// cost a fifth of a signature check.
	if err := n.ps.RegisterTopicValidator(name, n.topicValidator(topic), pubsub.WithValidatorInline(true)); err != nil {
		return nil, fmt.Errorf("node: topic %q: %w", topic, err)
	}
	t, err := n.ps.Join(name)
	if err != nil {
		_ = n.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("node: topic %q: %w", topic, err)
	}
	if err := t.SetScoreParams(sharedTopicScore); err != nil {
		_ = t.Close()
		_ = n.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("node: topic %q: %w", topic, err)
	}
	n.topics[topic] = t
	return t, nil
}

// releaseTopic ends one use of a topic. u may belong to a topic the node
// has since left only if the node closed meanwhile; counting on it is then
// harmless.
func (n *Node) releaseTopic(u *topicUse) {
	now := n.clock()
	n.mu.Lock()
	defer n.mu.Unlock()
	u.users--
	if u.users == 0 {
		u.idleSince = now
	}
}

// Topics returns the mesh topics the node has joined, sorted: those it
// subscribes to or publishes on, those used within TopicIdleTimeout, and
// those its extensions watch. Safe for concurrent access.
func (n *Node) Topics() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Sorted(maps.Keys(n.topics))
}

// minTopicSweep bounds how often the janitor looks for idle topics, however
// short TopicIdleTimeout is.
const minTopicSweep = 10 * time.Millisecond

// leaveIdleTopicsLoop is the janitor: every half TopicIdleTimeout it
// leaves the topics idle for longer, so a topic stays joined between one
// and one and a half timeouts after its last use.
func (n *Node) leaveIdleTopicsLoop(ctx context.Context) {
	tick := time.NewTicker(max(n.cfg.TopicIdleTimeout/2, minTopicSweep))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			n.leaveIdleTopics(n.clock())
		}
	}
}

// leaveIdleTopics leaves every topic without users since before now minus
// TopicIdleTimeout, except watched ones, and returns how many it left.
// Each topic is left under its own hold of n.mu, so a sweep of thousands
// does not stall Publish and Subscribe for its whole length.
func (n *Node) leaveIdleTopics(now time.Time) int {
	cutoff := now.Add(-n.cfg.TopicIdleTimeout)
	n.mu.Lock()
	var idle []string
	for topic, u := range n.topicUses {
		if u.users == 0 && !u.idleSince.After(cutoff) {
			idle = append(idle, topic)
		}
	}
	n.mu.Unlock()
	left := 0
	for _, topic := range idle {
		if n.leaveIfIdle(topic, cutoff) {
			left++
		}
	}
	return left
}

// leaveIfIdle leaves topic if it is still idle since cutoff and no
// extension watches it: it closes the GossipSub topic, unregisters the
// validator and forgets the topic, so that the next use joins afresh.
func (n *Node) leaveIfIdle(topic string, cutoff time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	u, t := n.topicUses[topic], n.topics[topic]
	if n.closed || u == nil || t == nil || u.users > 0 || u.idleSince.After(cutoff) {
		return false
	}
	if _, watched := n.topicHook(topic); watched {
		return false
	}
	if err := t.Close(); err != nil {
		// Only a subscription or event handler the count does not see
		// (none is made outside it) or a closing pubsub gets here; the
		// next sweep tries again.
		n.log.Debug("topic not left", "topic", topic, "err", err)
		return false
	}
	if err := n.ps.UnregisterTopicValidator(n.pubsubTopic(topic)); err != nil {
		n.log.Warn("topic left but its validator stays registered", "topic", topic, "err", err)
	}
	delete(n.topics, topic)
	delete(n.topicUses, topic)
	return true
}

package meshlog

import (
	"fmt"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/node/ext"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Quotas of a logged topic (PROTOCOL.md §18.7). A log keeps whatever it
// takes in for good, so what it takes in is bounded three ways before the
// append, each in entries and in bytes per second:
//
//   - per sending device (Config.DeviceQuota): beyond it the envelope is
//     ignored and the device scored SenderRateExceeded;
//   - per forwarding peer (Config.TopicQuota): beyond it the envelope is
//     ignored and the peer scored RateExceeded. Honest nodes forward only
//     what their own topic quota let in, so an honest neighbour stays
//     within a per-peer quota equal to the topic's; a peer pushing envelopes
//     of ever new keys does not;
//   - in total (Config.TopicQuota): beyond it the envelope is ignored,
//     nobody is blamed;
//
// and the log's size by Config.MaxLogBytes: a full log refuses new entries
// (ErrLogFull) until an operator acts. Every refusal is counted by reason
// (LogInfo.Refused); a local publish refused gets the error.

// Quota is a pair of token buckets. A zero rate leaves that dimension
// unlimited.
type Quota struct {
	Entries    rate.Limit // entries per second
	EntryBurst int
	Bytes      rate.Limit // entry bytes per second
	ByteBurst  int
}

// Validate reports a limited dimension without a burst, or a byte burst
// below the largest entry (which could then never pass).
func (q Quota) Validate() error {
	switch {
	case q.Entries < 0 || q.Bytes < 0:
		return fmt.Errorf("meshlog: quota %+v: negative rate", q)
	case q.Entries > 0 && q.EntryBurst <= 0:
		return fmt.Errorf("meshlog: quota %+v: EntryBurst must be positive", q)
	case q.Bytes > 0 && q.ByteBurst < gossip.MaxEnvelopeSize:
		return fmt.Errorf("meshlog: quota %+v: ByteBurst must be at least %d, the largest envelope", q, gossip.MaxEnvelopeSize)
	}
	return nil
}

// Refusal reasons counted in LogInfo.Refused.
const (
	refusedDevice = "device-quota"
	refusedPeer   = "peer-quota"
	refusedTopic  = "topic-quota"
	refusedFull   = "log-full"
	refusedStore  = "store-error"
)

// buckets is one key's pair of limiters.
type buckets struct{ entries, bytes *rate.Limiter }

func newBuckets(q Quota) *buckets {
	b := &buckets{}
	if q.Entries > 0 {
		b.entries = rate.NewLimiter(q.Entries, q.EntryBurst)
	}
	if q.Bytes > 0 {
		b.bytes = rate.NewLimiter(q.Bytes, q.ByteBurst)
	}
	return b
}

// allow takes one entry of size bytes at now, from both buckets or from
// neither.
func (b *buckets) allow(now time.Time, size int) bool {
	if b.entries != nil && b.entries.TokensAt(now) < 1 {
		return false
	}
	if b.bytes != nil && !b.bytes.AllowN(now, size) {
		return false
	}
	if b.entries != nil {
		b.entries.AllowN(now, 1)
	}
	return true
}

// maxQuotaKeys bounds the devices and peers a topic keeps buckets for. A
// bucket dropped while draining is refilled, as antispam.RateLimiter's
// are; a key that wanted that could have been a new key anyway.
const maxQuotaKeys = 4096

// topicQuota is the admission state of one logged topic.
type topicQuota struct {
	device, topic Quota // set at creation, never modified
	total         *buckets
	devices       *lru.Cache[string, *buckets]
	peers         *lru.Cache[peer.ID, *buckets]

	mu      sync.Mutex // guards refused and serialises the buckets
	refused map[string]uint64
}

func newTopicQuota(device, topic Quota) (*topicQuota, error) {
	devices, err := lru.New[string, *buckets](maxQuotaKeys)
	if err != nil {
		return nil, err
	}
	peers, err := lru.New[peer.ID, *buckets](maxQuotaKeys)
	if err != nil {
		return nil, err
	}
	return &topicQuota{device: device, topic: topic, total: newBuckets(topic), devices: devices, peers: peers, refused: make(map[string]uint64)}, nil
}

// admit decides whether env (size bytes) from forwarder from may enter
// the log; self is this node's peer ID. A refusal is counted, scored
// when someone is at fault, and returned as an ext.ErrIgnore error. A
// recovered envelope is held to the total quota only.
func (q *topicQuota) admit(h ext.Host, from, self peer.ID, env *gossip.Envelope, size int, recovered bool) error {
	now := h.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	if from != self && !recovered {
		sender := env.Sender.String()
		d, ok := q.devices.Get(sender)
		if !ok {
			d = newBuckets(q.device)
			q.devices.Add(sender, d)
		}
		if !d.allow(now, size) {
			h.Penalise(antispam.DeviceSubject(env.Sender), antispam.SenderRateExceeded)
			return q.refuse(refusedDevice, fmt.Errorf("device %s over its quota", env.Sender))
		}
		p, ok := q.peers.Get(from)
		if !ok {
			p = newBuckets(q.topic)
			q.peers.Add(from, p)
		}
		if !p.allow(now, size) {
			h.Penalise(antispam.PeerSubject(from), antispam.RateExceeded)
			return q.refuse(refusedPeer, fmt.Errorf("peer %s over the topic's quota", from))
		}
	}
	if !q.total.allow(now, size) {
		return q.refuse(refusedTopic, fmt.Errorf("topic %q over its quota", env.Topic))
	}
	return nil
}

// refuse counts a refusal. Callers hold q.mu.
func (q *topicQuota) refuse(reason string, err error) error {
	q.refused[reason]++
	return fmt.Errorf("%w: %w: %v", ext.ErrIgnore, ErrQuota, err)
}

// count counts a refusal decided elsewhere (a full log, a store error).
func (q *topicQuota) count(reason string) {
	q.mu.Lock()
	q.refused[reason]++
	q.mu.Unlock()
}

// refusals returns a copy of the counts.
func (q *topicQuota) refusals() map[string]uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make(map[string]uint64, len(q.refused))
	for k, v := range q.refused {
		out[k] = v
	}
	return out
}

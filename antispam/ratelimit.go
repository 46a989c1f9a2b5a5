package antispam

import (
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/bitmesh/bitmesh/identity"
)

// RateConfig sets the token buckets. A zero (or rate.Inf) limit means
// unlimited: nothing is tracked for that kind.
type RateConfig struct {
	// PerSender is the sustained envelope rate allowed per sending device,
	// across all topics. Higher admits chattier devices; lower caps what
	// one key can push through the mesh.
	PerSender rate.Limit
	// SenderBurst is how many envelopes a device may send at once after
	// being quiet (a reconnect flushing a queue, a batch of readings).
	SenderBurst int
	// PerPeer is the sustained rate allowed per forwarding peer. A peer
	// relays many senders, so it is far above PerSender.
	PerPeer rate.Limit
	// PeerBurst is the per-peer burst: GossipSub delivers IWANT replies
	// and reconnect catch-up in bursts.
	PeerBurst int
	// MaxKeys bounds the buckets kept per kind (senders, peers); the least
	// recently used is dropped when full. A bucket idle for Burst/Limit is
	// full again, exactly as a fresh one, so dropping an idle key loses
	// nothing; only a key that is both draining and the least recent of
	// MaxKeys gets a fresh burst, which an attacker could get anyway by
	// using a new key. Each bucket costs about 270 bytes.
	MaxKeys int
}

// DefaultRateConfig returns limits for IoT traffic. The busiest sender is
// not a sensor but a gateway that signs, under its own key, everything an
// MQTT site publishes: 50 envelopes per second with bursts of 200 (a site
// of a few hundred sensors, or a queue flushed after a reconnect). A
// forwarding peer relays many senders: 500 per second with bursts of 1000
// (GossipSub catch-up after a partition heals arrives in bursts). 16384
// buckets per kind cost about 4.5 MB each at most.
func DefaultRateConfig() RateConfig {
	return RateConfig{
		PerSender:   50,
		SenderBurst: 200,
		PerPeer:     500,
		PeerBurst:   1000,
		MaxKeys:     1 << 14,
	}
}

// Validate reports the first invalid setting; the error wraps
// ErrInvalidConfig.
func (c RateConfig) Validate() error {
	switch {
	case c.PerSender < 0 || c.PerPeer < 0:
		return invalidConfig("rate limits must not be negative")
	case limited(c.PerSender) && c.SenderBurst <= 0:
		return invalidConfig("SenderBurst must be positive when PerSender is limited")
	case limited(c.PerPeer) && c.PeerBurst <= 0:
		return invalidConfig("PeerBurst must be positive when PerPeer is limited")
	case c.MaxKeys <= 0:
		return invalidConfig("rate MaxKeys must be positive")
	}
	return nil
}

func limited(l rate.Limit) bool { return l > 0 && l != rate.Inf }

// RateLimiter holds a token bucket per sending device and per forwarding
// peer. Time is an argument, never read from the clock. It is safe for
// concurrent access.
type RateLimiter struct {
	senders *bucketSet[identity.DeviceID] // set at creation, never modified
	peers   *bucketSet[peer.ID]           // set at creation, never modified
}

// NewRateLimiter returns a limiter for cfg.
func NewRateLimiter(cfg RateConfig) (*RateLimiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &RateLimiter{
		senders: newBucketSet[identity.DeviceID](cfg.PerSender, cfg.SenderBurst, cfg.MaxKeys),
		peers:   newBucketSet[peer.ID](cfg.PerPeer, cfg.PeerBurst, cfg.MaxKeys),
	}, nil
}

// AllowSender takes one token from d's bucket at now and reports whether
// there was one. A false answer is a SenderRateExceeded for the ledger.
func (r *RateLimiter) AllowSender(now time.Time, d identity.DeviceID) bool {
	return r.senders.allow(now, d)
}

// AllowPeer takes one token from p's bucket at now and reports whether
// there was one. A false answer is a RateExceeded for the ledger.
func (r *RateLimiter) AllowPeer(now time.Time, p peer.ID) bool {
	return r.peers.allow(now, p)
}

// Keys returns how many sender and peer buckets are held.
func (r *RateLimiter) Keys() (senders, peers int) {
	return r.senders.len(), r.peers.len()
}

// bucketSet is a bounded LRU of token buckets of one kind.
type bucketSet[K comparable] struct {
	limit rate.Limit // set at creation, never modified
	burst int        // set at creation, never modified

	mu      sync.Mutex // guards buckets
	buckets *simplelru.LRU[K, *rate.Limiter]
}

func newBucketSet[K comparable](limit rate.Limit, burst, maxKeys int) *bucketSet[K] {
	buckets, err := simplelru.NewLRU[K, *rate.Limiter](maxKeys, nil)
	if err != nil {
		panic(err) // maxKeys > 0: RateConfig.Validate checked it
	}
	return &bucketSet[K]{limit: limit, burst: burst, buckets: buckets}
}

func (s *bucketSet[K]) allow(now time.Time, k K) bool {
	if !limited(s.limit) {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.buckets.Get(k)
	if !ok {
		b = rate.NewLimiter(s.limit, s.burst)
		s.buckets.Add(k, b) // drops the least recently used key when full
	}
	return b.AllowN(now, 1)
}

func (s *bucketSet[K]) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buckets.Len()
}

package node

import (
	"fmt"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/identity"
)

// defences is the node's anti-spam state: what a topic costs to publish
// on, how fast peers and devices may send, and who misbehaved.
type defences struct {
	work    *antispam.Difficulty
	limiter *antispam.RateLimiter
	// historyLimiter applies the per-sender rate to envelopes recovered
	// from other nodes' logs, in the envelopes' own time (see admit).
	historyLimiter *antispam.RateLimiter
	// publish shapes the node's own publishes to what its peers' limiter
	// accepts (see Publish); nil when the per-device rate is unlimited.
	publish *rate.Limiter
	ledger  *antispam.Ledger
	store   antispam.BanStore
	// subjects caches peers' ledger subjects (see peerSubject); bounded,
	// since it is keyed by whoever connects.
	subjects *lru.Cache[peer.ID, antispam.Subject]
	// devices caches senders' ledger subjects (see deviceSubject); bounded,
	// since anyone can sign with a fresh key.
	devices *lru.Cache[identity.DeviceID, antispam.Subject]
}

// subjectCacheSize covers the connections of a well-connected node.
const subjectCacheSize = 1024

// deviceCacheSize covers the active senders of a busy site.
const deviceCacheSize = 4096

// newDefences builds the policy objects; they do no IO.
func newDefences(cfg Config) (*defences, error) {
	work, err := antispam.NewDifficulty(cfg.Work)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	limiter, err := antispam.NewRateLimiter(cfg.Rate)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	historyLimiter, err := antispam.NewRateLimiter(cfg.Rate)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	subjects, err := lru.New[peer.ID, antispam.Subject](subjectCacheSize)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	devices, err := lru.New[identity.DeviceID, antispam.Subject](deviceCacheSize)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	return &defences{work: work, limiter: limiter, historyLimiter: historyLimiter, publish: publishShaper(cfg.Rate), subjects: subjects, devices: devices}, nil
}

// publishShaper returns the bucket for the node's own publishes: the
// per-device rate every peer applies, with half its burst. Peers see the
// envelopes later than they were made, and unevenly; a bucket half as
// deep as theirs absorbs SenderBurst/(2·PerSender) of jitter (2 s at the
// defaults) before any peer counts an excess.
func publishShaper(c antispam.RateConfig) *rate.Limiter {
	if c.PerSender <= 0 || c.PerSender == rate.Inf {
		return nil
	}
	return rate.NewLimiter(c.PerSender, max(1, c.SenderBurst/2))
}

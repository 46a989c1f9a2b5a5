package node

import (
	"fmt"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bitmesh/bitmesh/antispam"
)

// defences is the node's anti-spam state: what a topic costs to publish
// on, how fast peers and devices may send, and who misbehaved.
type defences struct {
	work    *antispam.Difficulty
	limiter *antispam.RateLimiter
	// historyLimiter applies the per-sender rate to envelopes recovered
	// from other nodes' logs, in the envelopes' own time (see admit).
	historyLimiter *antispam.RateLimiter
	ledger         *antispam.Ledger
	store          antispam.BanStore
	// subjects caches peers' ledger subjects (see peerSubject); bounded,
	// since it is keyed by whoever connects.
	subjects *lru.Cache[peer.ID, antispam.Subject]
}

// subjectCacheSize covers the connections of a well-connected node.
const subjectCacheSize = 1024

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
	return &defences{work: work, limiter: limiter, historyLimiter: historyLimiter, subjects: subjects}, nil
}

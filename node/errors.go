package node

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrNotStarted is returned by operations that need a started node.
	ErrNotStarted = errors.New("node: not started")
	// ErrClosed is returned by operations on a closed node or subscription.
	ErrClosed = errors.New("node: closed")
	// ErrAlreadyStarted is returned by a second Start.
	ErrAlreadyStarted = errors.New("node: already started")
	// ErrPublishRate: Publish refused an envelope because the node's
	// device would exceed the per-device rate its peers enforce (see
	// RateLimitError for when to retry). Publishing on would get the
	// device scored, then banned, by its own neighbours.
	ErrPublishRate = errors.New("node: publish rate exceeded")
	// ErrNoTopicPeers: Publish with WithMinPeers gave up waiting for the
	// topic's subscribers; nothing was sent.
	ErrNoTopicPeers = errors.New("node: too few peers on the topic")
	// ErrCongested: Publish gave up waiting for room: every topic peer's
	// outbound queue stayed more than half full until ctx ended. Nothing
	// was sent.
	ErrCongested = errors.New("node: every topic peer's outbound queue is full")
)

// RateLimitError is a publish refused by the node's own rate shaping. It
// wraps ErrPublishRate.
type RateLimitError struct {
	// RetryAfter is how long until the next publish would be allowed.
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("%v: retry after %v", ErrPublishRate, e.RetryAfter.Round(time.Millisecond))
}

func (e *RateLimitError) Unwrap() error { return ErrPublishRate }

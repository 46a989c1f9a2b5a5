package node

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestPublishShapedToPeerLimit: a node never publishes faster than its
// peers' per-device limit lets it. Beyond half the burst, Publish refuses
// with a RateLimitError saying when a token is back, and sends nothing.
func TestPublishShapedToPeerLimit(t *testing.T) {
	var clock atomic.Pointer[time.Time]
	t0 := time.Now()
	clock.Store(&t0)
	cfg := LocalConfig()
	cfg.Clock = func() time.Time { return *clock.Load() }
	cfg.Rate.PerSender, cfg.Rate.SenderBurst = 10, 8 // one token per 100 ms, 4 for own publishes
	n := startNode(t, cfg)
	ctx := context.Background()

	for i := range 4 {
		if _, err := n.Publish(ctx, "t", []byte{byte(i)}); err != nil {
			t.Fatalf("publish %d within the burst: %v", i, err)
		}
	}
	_, err := n.Publish(ctx, "t", []byte("over"))
	var limited *RateLimitError
	if !errors.As(err, &limited) || !errors.Is(err, ErrPublishRate) {
		t.Fatalf("publish beyond the burst: %v, want a RateLimitError", err)
	}
	if limited.RetryAfter <= 0 || limited.RetryAfter > 100*time.Millisecond {
		t.Errorf("RetryAfter %v, want (0, 100ms]", limited.RetryAfter)
	}
	// A refusal takes no token: after RetryAfter exactly one publish passes.
	t1 := t0.Add(limited.RetryAfter)
	clock.Store(&t1)
	if _, err := n.Publish(ctx, "t", []byte("later")); err != nil {
		t.Fatalf("publish after RetryAfter: %v", err)
	}
	if _, err := n.Publish(ctx, "t", []byte("again")); !errors.Is(err, ErrPublishRate) {
		t.Fatalf("second publish after RetryAfter: %v, want ErrPublishRate", err)
	}

	// Unlimited per-device rate: no shaping.
	cfg = LocalConfig()
	cfg.Rate.PerSender = 0
	free := startNode(t, cfg)
	for i := range 50 {
		if _, err := free.Publish(ctx, "t", []byte{byte(i)}); err != nil {
			t.Fatalf("unlimited publish %d: %v", i, err)
		}
	}
}

// TestPublishNoPeers: WithMinPeers gives up with ErrNoTopicPeers when ctx
// ends first, and the failed publish gives its rate token back.
func TestPublishNoPeers(t *testing.T) {
	var clock atomic.Pointer[time.Time]
	t0 := time.Now()
	clock.Store(&t0)
	cfg := LocalConfig()
	cfg.Clock = func() time.Time { return *clock.Load() }
	cfg.Rate.PerSender, cfg.Rate.SenderBurst = 1, 2 // own bucket: one token
	n := startNode(t, cfg)
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_, err := n.Publish(ctx, "t", []byte("x"), WithMinPeers(1))
		cancel()
		if !errors.Is(err, ErrNoTopicPeers) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("publish without peers: %v, want ErrNoTopicPeers and the deadline", err)
		}
	}
	if _, err := n.Publish(context.Background(), "t", []byte("x")); err != nil {
		t.Fatalf("the token was not given back: %v", err)
	}
}

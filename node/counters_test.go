package node

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/gossip"
)

func TestMessageCounters(t *testing.T) {
	for _, tc := range []struct {
		name                string
		local               bool
		verdict             gossip.Verdict
		published, received uint64
	}{
		{"own accepted", true, gossip.Accept, 1, 0},
		{"other accepted", false, gossip.Accept, 0, 1},
		{"own ignored", true, gossip.Ignore, 0, 0},
		{"other rejected", false, gossip.Reject, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c messageCounters
			c.count(tc.local, gossip.Result{Verdict: tc.verdict})
			if p, r := c.published.Load(), c.received.Load(); p != tc.published || r != tc.received {
				t.Fatalf("published %d received %d, want %d %d", p, r, tc.published, tc.received)
			}
		})
	}
}

// TestRunning follows Running through a node's life: false before Start,
// true while it runs, false again after Close.
func TestRunning(t *testing.T) {
	cfg := LocalConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n.Running() {
		t.Fatal("running before Start")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !n.Running() {
		t.Fatal("not running after Start")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if n.Running() {
		t.Fatal("running after Close")
	}
}

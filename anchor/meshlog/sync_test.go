package meshlog_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/anchor/meshlog"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/node"

	"github.com/bitmesh/bitmesh/internal/testwait"
)

// TestHistorySyncAfterOutage stops node C while node A publishes 50
// entries, restarts it from its data directory, and expects C to fetch
// exactly the 50 it missed from A's log, checked against A's checkpoint,
// into its own log.
func TestHistorySyncAfterOutage(t *testing.T) {
	const topic = "sensors/flow"
	nodes := startLogNodes(t, 2, topic)
	a := nodes[0]
	dataC := t.TempDir()
	keyC, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	recovered := map[string]bool{}
	startC := func() (*node.Node, *meshlog.MeshLog) {
		lc := meshlog.DefaultConfig()
		lc.Topics = []string{topic}
		lc.CheckpointInterval = time.Hour
		lc.Recovered = func(tp string, env *gossip.Envelope) {
			mu.Lock()
			defer mu.Unlock()
			recovered[string(env.Payload)] = true
		}
		ml, err := meshlog.New(lc)
		if err != nil {
			t.Fatal(err)
		}
		cfg := node.LocalConfig()
		cfg.DataDir, cfg.Key = dataC, keyC
		for _, ln := range nodes {
			for _, addr := range ln.n.Addrs() {
				cfg.BootstrapPeers = append(cfg.BootstrapPeers, addr.String())
			}
		}
		n, err := node.New(cfg, node.WithExtension(ml))
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		testwait.For(t, 15*time.Second, 20*time.Millisecond, func() error {
			if got := len(n.TopicPeers(topic)); got < 2 {
				return fmt.Errorf("C has %d topic peers", got)
			}
			return nil
		})
		return n, ml
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	c, logC := startC()
	for i := range 5 {
		if _, err := a.n.Publish(ctx, topic, fmt.Appendf(nil, "before %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got := logC.Logs()[0].Size; got != 5 {
			return fmt.Errorf("C logged %d, want 5", got)
		}
		return nil
	})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	for i := range 50 {
		if _, err := a.n.Publish(ctx, topic, fmt.Appendf(nil, "during %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got := a.log.Logs()[0].Size; got != 55 {
			return fmt.Errorf("A logged %d, want 55", got)
		}
		return nil
	})
	if _, err := a.log.Checkpoint(ctx, topic); err != nil {
		t.Fatal(err)
	}

	c, logC = startC()
	defer c.Close()
	testwait.For(t, 20*time.Second, 20*time.Millisecond, func() error {
		if got := logC.Logs()[0].Size; got != 55 {
			return fmt.Errorf("C's log has %d entries, want 55", got)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if len(recovered) != 50 {
		t.Fatalf("recovered %d envelopes, want the 50 missed", len(recovered))
	}
	for i := range 50 {
		if !recovered[fmt.Sprintf("during %d", i)] {
			t.Fatalf("missed entry %d not recovered", i)
		}
	}
}

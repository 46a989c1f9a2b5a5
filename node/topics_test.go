package node

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/node/ext"

	"github.com/bitmesh/bitmesh/internal/testwait"
)

// watcher is an extension that watches one topic, as a log does.
type watcher struct{ topic string }

func (w watcher) Name() string { return "watcher" }
func (w watcher) Start(h ext.Host) error {
	return h.Watch(w.topic, ext.TopicHook{})
}
func (w watcher) Close() error { return nil }

// TestIdleTopicsAreLeft publishes once on each of 200 topics nobody
// subscribes to, the way `bitmesh pub` does through the control API, and
// checks that the node leaves them all once idle, but keeps a topic with
// a live subscription (which still delivers) and a watched topic; a left
// topic can be used again.
func TestIdleTopicsAreLeft(t *testing.T) {
	const (
		kept    = "sensors/kept"
		watched = "logs/watched"
		count   = 200
	)
	cfg := LocalConfig()
	cfg.TopicIdleTimeout = 200 * time.Millisecond
	cfg.Rate.PerSender = 0 // hundreds of publishes at once; the rate is tested elsewhere
	n := startNode(t, cfg, WithExtension(watcher{watched}))
	peerCfg := LocalConfig()
	peerCfg.BootstrapPeers = bootstrapFrom(n)
	other := startNode(t, peerCfg)

	sub, err := n.Subscribe(kept)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range count {
		if _, err := n.Publish(ctx, fmt.Sprintf("once/%d", i), []byte("x")); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	want := []string{watched, kept}
	testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got := n.Topics(); !slices.Equal(got, want) {
			return fmt.Errorf("%d topics joined (first %q), want %q", len(got), got[:min(len(got), 3)], want)
		}
		return nil
	})

	// The kept topic still delivers, from a peer; its subscription outlived
	// several sweeps.
	if _, err := other.Publish(ctx, kept, []byte("still here"), WithMinPeers(1)); err != nil {
		t.Fatal(err)
	}
	m, err := sub.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Payload) != "still here" || m.From != other.DeviceID() {
		t.Fatalf("delivered %q from %s", m.Payload, m.From)
	}
	// A left topic is joined again on use: its validator was unregistered.
	if _, err := n.Publish(ctx, "once/0", []byte("again")); err != nil {
		t.Fatalf("publish on a left topic: %v", err)
	}
}

// TestTopicUseCounting steps the sweep directly, with the node's clock
// stopped, to check what keeps a topic joined.
func TestTopicUseCounting(t *testing.T) {
	var clock atomic.Pointer[time.Time]
	t0 := time.Now()
	clock.Store(&t0)
	cfg := LocalConfig()
	cfg.Clock = func() time.Time { return *clock.Load() }
	idle := cfg.TopicIdleTimeout
	n := startNode(t, cfg)

	for i, tc := range []struct {
		name string
		// use makes the topic's uses at the node's time; it returns the
		// subscriptions still live.
		use      func(t *testing.T, n *Node, topic string) []*Subscription
		after    time.Duration // how long after t0 the sweep runs
		wantKept bool
	}{
		{"publish only, idle past the timeout", publishOnce, idle, false},
		{"publish only, idle within the timeout", publishOnce, idle - time.Nanosecond, true},
		{"live subscription", subscribe(2, 0), 100 * idle, true},
		{"one of two subscriptions cancelled", subscribe(2, 1), 100 * idle, true},
		{"one subscription cancelled twice", subscribe(2, -1), 100 * idle, true},
		{"all subscriptions cancelled", subscribe(2, 2), idle, false},
		{"watched by an extension", func(t *testing.T, n *Node, topic string) []*Subscription {
			n.hooksMu.Lock()
			n.hooks[topic] = ext.TopicHook{}
			n.hooksMu.Unlock()
			t.Cleanup(func() {
				n.hooksMu.Lock()
				delete(n.hooks, topic)
				n.hooksMu.Unlock()
			})
			return publishOnce(t, n, topic)
		}, 100 * idle, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := fmt.Sprintf("use/%d", i)
			for _, s := range tc.use(t, n, topic) {
				defer s.Cancel()
			}
			n.leaveIdleTopics(t0.Add(tc.after))
			if kept := slices.Contains(n.Topics(), topic); kept != tc.wantKept {
				t.Fatalf("topic kept = %v, want %v (joined: %q)", kept, tc.wantKept, n.Topics())
			}
		})
	}
}

func publishOnce(t *testing.T, n *Node, topic string) []*Subscription {
	t.Helper()
	if _, err := n.Publish(context.Background(), topic, []byte("x")); err != nil {
		t.Fatal(err)
	}
	return nil
}

// subscribe makes count subscriptions and cancels the first cancel of
// them; -1 cancels the first one twice.
func subscribe(count, cancel int) func(t *testing.T, n *Node, topic string) []*Subscription {
	return func(t *testing.T, n *Node, topic string) []*Subscription {
		t.Helper()
		var subs []*Subscription
		for range count {
			s, err := n.Subscribe(topic)
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, s)
		}
		if cancel < 0 {
			subs[0].Cancel()
			subs[0].Cancel()
			return subs[1:]
		}
		for _, s := range subs[:cancel] {
			s.Cancel()
		}
		return subs[cancel:]
	}
}

// TestPublishRacingLeave publishes from several goroutines while sweeps
// that leave every unused topic run back to back: no publish may fail.
func TestPublishRacingLeave(t *testing.T) {
	cfg := LocalConfig()
	cfg.TopicIdleTimeout = time.Nanosecond // the janitor sweeps as often as it can
	cfg.Rate.PerSender = 0                 // publishers race the janitor, not the rate
	n := startNode(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var left atomic.Int64
	stop := make(chan struct{})
	sweeper := make(chan struct{})
	go func() {
		defer close(sweeper)
		for {
			select {
			case <-stop:
				return
			default:
				left.Add(int64(n.leaveIdleTopics(time.Now().Add(time.Hour))))
				runtime.Gosched()
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			for i := range 100 {
				topic := fmt.Sprintf("race/%d", i%3)
				if _, err := n.Publish(ctx, topic, fmt.Appendf(nil, "%d/%d", g, i)); err != nil {
					errs <- fmt.Errorf("publisher %d, publish %d: %w", g, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-sweeper
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if err := errors.Join(all...); err != nil {
		t.Fatal(err)
	}
	if left.Load() == 0 {
		t.Fatal("no topic was left during the publishes: the race was not exercised")
	}
}

func TestTopicIdleTimeoutValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		wantErr bool
	}{
		{"zero", 0, true},
		{"negative", -time.Second, true},
		{"one nanosecond", time.Nanosecond, false},
		{"default", DefaultConfig().TopicIdleTimeout, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := LocalConfig()
			c.TopicIdleTimeout = tc.timeout
			if err := c.Validate(); (err != nil) != tc.wantErr {
				t.Fatalf("Validate() = %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

package antispam

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/bitmesh/bitmesh/identity"
)

func device(i int) identity.DeviceID {
	var d identity.DeviceID
	d[0], d[1] = byte(i>>8), byte(i)
	return d
}

// testRateConfig fixes the limits the tests count against, so changing the
// defaults does not change what the tests check.
func testRateConfig() RateConfig {
	return RateConfig{PerSender: 10, SenderBurst: 50, PerPeer: 200, PeerBurst: 500, MaxKeys: 1 << 14}
}

func newTestRateLimiter(t testing.TB, mutate func(*RateConfig)) *RateLimiter {
	t.Helper()
	cfg := testRateConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	r, err := NewRateLimiter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// countAllowed calls allow n times at the same instant and counts the yeses.
func countAllowed(n int, allow func() bool) int {
	ok := 0
	for range n {
		if allow() {
			ok++
		}
	}
	return ok
}

func TestRateLimiterBurstAndRefill(t *testing.T) {
	tests := []struct {
		name  string
		allow func(r *RateLimiter, now time.Time) bool
		burst int
		rate  float64 // tokens per second
	}{
		{"sender", func(r *RateLimiter, now time.Time) bool { return r.AllowSender(now, device(1)) }, 50, 10},
		{"peer", func(r *RateLimiter, now time.Time) bool { return r.AllowPeer(now, peer.ID("p1")) }, 500, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRateLimiter(t, nil)
			steps := []struct {
				at    time.Duration
				tries int
				want  int
			}{
				{0, tt.burst + 10, tt.burst}, // a full burst, then nothing
				{time.Duration(float64(time.Second) / tt.rate), 3, 1},
				{time.Second + time.Duration(float64(time.Second)/tt.rate), 2 * tt.burst, int(tt.rate)},
				{time.Hour, 2 * tt.burst, tt.burst}, // refills to the burst, no further
				{time.Hour - time.Minute, 1, 0},     // a clock step back mints nothing
			}
			for i, st := range steps {
				now := t0.Add(st.at)
				if got := countAllowed(st.tries, func() bool { return tt.allow(r, now) }); got != st.want {
					t.Fatalf("step %d at +%v: %d allowed, want %d", i, st.at, got, st.want)
				}
			}
		})
	}
}

func TestRateLimiterKeysIndependent(t *testing.T) {
	r := newTestRateLimiter(t, nil)
	if got := countAllowed(100, func() bool { return r.AllowSender(t0, device(1)) }); got != 50 {
		t.Fatalf("device 1: %d allowed", got)
	}
	if !r.AllowSender(t0, device(2)) {
		t.Fatal("device 2 limited by device 1's flood")
	}
	if got := countAllowed(600, func() bool { return r.AllowPeer(t0, peer.ID("a")) }); got != 500 {
		t.Fatalf("peer a: %d allowed", got)
	}
	if !r.AllowPeer(t0, peer.ID("b")) {
		t.Fatal("peer b limited by peer a's flood")
	}
	// A peer ID and a device are separate buckets even for the same key.
	id := device(3)
	pid := peer.ID(id[:])
	countAllowed(100, func() bool { return r.AllowPeer(t0, pid) })
	if !r.AllowSender(t0, id) {
		t.Fatal("sender bucket shared with the peer bucket")
	}
}

func TestRateLimiterEvictionBound(t *testing.T) {
	r := newTestRateLimiter(t, func(c *RateConfig) { c.MaxKeys = 3 })
	for i := range 10 {
		r.AllowSender(t0, device(i))
		r.AllowPeer(t0, peer.ID(rune('a'+i)))
	}
	if s, p := r.Keys(); s != 3 || p != 3 {
		t.Fatalf("Keys = %d, %d; want 3, 3", s, p)
	}
	// Drain device 9 (most recent), touch 8 and 7 so 9 is least recent, then
	// add a new device: 9 is evicted and comes back with a fresh burst.
	countAllowed(100, func() bool { return r.AllowSender(t0, device(9)) })
	r.AllowSender(t0, device(8))
	r.AllowSender(t0, device(7))
	if r.AllowSender(t0, device(9)) {
		t.Fatal("drained bucket allowed")
	}
	r.AllowSender(t0, device(8))
	r.AllowSender(t0, device(7))
	r.AllowSender(t0, device(100))
	if !r.AllowSender(t0, device(9)) {
		t.Fatal("evicted key did not come back fresh")
	}
	if s, _ := r.Keys(); s != 3 {
		t.Fatalf("%d sender keys, want 3", s)
	}
}

func TestRateLimiterUnlimited(t *testing.T) {
	tests := []struct {
		name  string
		limit rate.Limit
	}{
		{"zero", 0},
		{"inf", rate.Inf},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRateLimiter(t, func(c *RateConfig) { c.PerSender, c.PerPeer = tt.limit, tt.limit })
			if got := countAllowed(10000, func() bool { return r.AllowSender(t0, device(1)) && r.AllowPeer(t0, "p") }); got != 10000 {
				t.Fatalf("%d of 10000 allowed", got)
			}
			if s, p := r.Keys(); s != 0 || p != 0 {
				t.Fatalf("unlimited kinds tracked %d, %d keys", s, p)
			}
		})
	}
}

func TestRateConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*RateConfig)
		ok     bool
	}{
		{"default", func(*RateConfig) {}, true},
		{"unlimited with zero bursts", func(c *RateConfig) { *c = RateConfig{MaxKeys: 1} }, true},
		{"negative sender rate", func(c *RateConfig) { c.PerSender = -1 }, false},
		{"negative peer rate", func(c *RateConfig) { c.PerPeer = -1 }, false},
		{"zero sender burst", func(c *RateConfig) { c.SenderBurst = 0 }, false},
		{"zero peer burst", func(c *RateConfig) { c.PeerBurst = 0 }, false},
		{"zero MaxKeys", func(c *RateConfig) { c.MaxKeys = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultRateConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
				t.Fatalf("Validate = %v, want ok=%v", err, tt.ok)
			}
			if _, err := NewRateLimiter(cfg); (err == nil) != tt.ok {
				t.Fatalf("NewRateLimiter = %v", err)
			}
		})
	}
}

// Under -race: concurrent callers of one sender never get more than its
// burst at one instant, while peer keys churn past the bound. (Sender keys
// do not churn here: an evicted key comes back fresh, by design.)
func TestRateLimiterConcurrent(t *testing.T) {
	r := newTestRateLimiter(t, func(c *RateConfig) { c.MaxKeys = 16 })
	const workers = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := countAllowed(100, func() bool { return r.AllowSender(t0, device(0)) })
			for i := range 100 {
				r.AllowPeer(t0, peer.ID(device(w*100+i).Hex()))
			}
			mu.Lock()
			allowed += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if allowed != 50 {
		t.Fatalf("%d allowed from one device at one instant, burst is 50", allowed)
	}
	if s, p := r.Keys(); s != 1 || p != 16 {
		t.Fatalf("Keys = %d, %d; want 1, 16", s, p)
	}
}

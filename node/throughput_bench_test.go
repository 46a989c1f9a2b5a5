package node

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
)

// BenchmarkTwoNodes measures end-to-end throughput between two real nodes
// on loopback (TCP, one process): the publisher signs b.N envelopes with
// 256-byte payloads from one goroutine per core, as fast as Publish
// returns, and the subscriber counts deliveries. In the same run it
// measures the two bounds the pipeline cannot beat, each on all cores:
// signing (Seal) and validating fresh envelopes (the receive path's
// gossip.Validator). Rate limits are off on both nodes.
//
// Metrics: e2e-msg/s, sign-msg/s, verify-msg/s, ratio (e2e over the lower
// bound), ratio-shared (e2e over the bound of one CPU doing both: 1 /
// (1/sign + 1/verify)), lost (published without error but never
// delivered) and drops (counted by the nodes, all reasons).
//
//	go test ./node -run '^$' -bench TwoNodes -benchtime 20000x
func BenchmarkTwoNodes(b *testing.B) {
	const payloadSize = 256
	payload := make([]byte, payloadSize)
	workers := runtime.GOMAXPROCS(0)

	sign, verify, err := pipelineBounds(workers, payload)
	if err != nil {
		b.Fatal(err)
	}

	cfg := LocalConfig()
	cfg.Rate.PerSender, cfg.Rate.PerPeer = 0, 0
	pub := startNode(b, cfg)
	sub := startPeer(b, pub, cfg)
	s, err := sub.Subscribe("bench", WithBuffer(b.N+1))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := pub.Publish(ctx, "bench", []byte("warm-up"), WithMinPeers(1)); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Next(ctx); err != nil {
		b.Fatal(err)
	}

	var delivered atomic.Int64
	var last atomic.Int64 // unix nanos of the latest delivery
	go func() {
		for {
			if _, err := s.Next(ctx); err != nil {
				return
			}
			delivered.Add(1)
			last.Store(time.Now().UnixNano())
		}
	}()
	b.ResetTimer()
	start := time.Now()
	var published, failed atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < b.N; i += workers {
				if _, err := pub.Publish(ctx, "bench", payload); err != nil {
					failed.Add(1)
					continue
				}
				published.Add(1)
			}
		})
	}
	wg.Wait()
	// Wait for the tail: until everything arrived, or 3 s pass without a
	// delivery.
	for delivered.Load() < published.Load() {
		before := delivered.Load()
		time.Sleep(3 * time.Second)
		if delivered.Load() == before {
			break
		}
	}
	b.StopTimer()
	elapsed := time.Unix(0, last.Load()).Sub(start)
	e2e := float64(delivered.Load()) / elapsed.Seconds()
	var drops uint64
	for _, n := range []*Node{pub, sub} {
		for _, c := range n.Drops() {
			drops += c
		}
	}
	b.ReportMetric(e2e, "e2e-msg/s")
	b.ReportMetric(sign, "sign-msg/s")
	b.ReportMetric(verify, "verify-msg/s")
	b.ReportMetric(e2e/min(sign, verify), "ratio")
	// Both nodes share this machine's cores: each envelope costs one
	// signature and one validation of the same CPU, so the pipeline's
	// bound here is the harmonic combination of the two.
	b.ReportMetric(e2e*(1/sign+1/verify), "ratio-shared")
	b.ReportMetric(float64(published.Load()-delivered.Load()), "lost")
	b.ReportMetric(float64(failed.Load()), "refused")
	b.ReportMetric(float64(drops), "drops")
	b.ReportMetric(0, "ns/op")
	if testing.Verbose() {
		fmt.Printf("drops: publisher %v, subscriber %v\n", pub.Drops(), sub.Drops())
	}
}

// pipelineBounds measures, on workers goroutines for a second each, the
// rate at which this process signs envelopes with payload (Seal) and
// validates fresh ones (the receive path's gossip.Validator).
func pipelineBounds(workers int, payload []byte) (sign, verify float64, err error) {
	key, err := identity.Generate()
	if err != nil {
		return 0, 0, err
	}
	network := gossip.NetworkFromName(DefaultNetwork)
	var failed atomic.Pointer[error]
	sign = perSecond(workers, time.Second, func(i int) {
		env := &gossip.Envelope{Network: network, Time: time.Now(), Seq: uint64(i), Topic: "bench", Payload: payload}
		if _, _, err := env.Seal(key); err != nil {
			failed.Store(&err)
		}
	})
	raws := make([][]byte, 4*int(sign))
	for i := range raws {
		env := &gossip.Envelope{Network: network, Time: time.Now(), Seq: uint64(i), Topic: "bench", Payload: payload}
		if raws[i], _, err = env.Seal(key); err != nil {
			return 0, 0, err
		}
	}
	v, err := gossip.NewValidator(LocalConfig().validatorConfig())
	if err != nil {
		return 0, 0, err
	}
	var next atomic.Int64
	verify = perSecond(workers, time.Second, func(int) {
		raw := raws[int(next.Add(1))%len(raws)]
		if r := v.Validate(time.Now(), "bench", raw); r.Verdict != gossip.Accept || r.Cached {
			err := fmt.Errorf("validate: %v %v (cached %v): pre-signed envelopes ran out", r.Verdict, r.Err, r.Cached)
			failed.Store(&err)
		}
	})
	if err := failed.Load(); err != nil {
		return 0, 0, *err
	}
	return sign, verify, nil
}

// perSecond runs f from workers goroutines for d and returns calls per
// second. f gets a distinct index per call.
func perSecond(workers int, d time.Duration, f func(i int)) float64 {
	var calls atomic.Int64
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				f(int(calls.Add(1)))
			}
		})
	}
	wg.Wait()
	return float64(calls.Load()) / time.Since(start).Seconds()
}

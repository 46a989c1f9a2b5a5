package node

import (
	"sync/atomic"
	"time"
)

// Histogram is a snapshot of a duration histogram in Prometheus's shape:
// Counts[i] is how many observations were at most Bounds[i] seconds
// (cumulative), Count and Sum (seconds) are over all observations.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// Bucket bounds, in seconds. Validation is one BIP-340 verification
// (~0.2 ms) or a cache hit (~µs); sealing may include proof of work,
// which at a raised target takes seconds.
var (
	validateBounds = []float64{25e-6, 50e-6, 100e-6, 200e-6, 400e-6, 800e-6, 1.6e-3, 5e-3, 20e-3, 100e-3}
	sealBounds     = []float64{100e-6, 200e-6, 500e-6, 1e-3, 5e-3, 20e-3, 100e-3, 500e-3, 2, 10}
)

// durations is a fixed-bucket histogram of durations, safe for
// concurrent use without locks: observing is a few atomic adds on the
// validation path.
type durations struct {
	bounds []float64
	counts []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	count  atomic.Uint64
	sumNS  atomic.Uint64
}

func newDurations(bounds []float64) *durations {
	return &durations{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

func (h *durations) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(h.bounds) && s > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.count.Add(1)
	h.sumNS.Add(uint64(max(d, 0)))
}

func (h *durations) snapshot() Histogram {
	out := Histogram{Bounds: h.bounds, Counts: make([]uint64, len(h.bounds))}
	var cum uint64
	for i := range h.bounds {
		cum += h.counts[i].Load()
		out.Counts[i] = cum
	}
	// Count is read last so that it is never below the buckets' sum.
	out.Count = max(h.count.Load(), cum+h.counts[len(h.bounds)].Load())
	out.Sum = float64(h.sumNS.Load()) / 1e9
	return out
}

// ValidateTimes is the histogram of the time the receive path spent on
// each envelope (validation, admission checks and hooks), wall time.
func (n *Node) ValidateTimes() Histogram { return n.validateTimes.snapshot() }

// SealTimes is the histogram of the time Publish spent minting proof of
// work and signing each of the node's own envelopes, wall time.
func (n *Node) SealTimes() Histogram { return n.sealTimes.snapshot() }

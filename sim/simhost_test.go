package sim

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestLossDelay(t *testing.T) {
	const rto = 250 * time.Millisecond
	for _, c := range []struct {
		loss  float64
		bytes int
		want  time.Duration // exact for loss 0 and 1
	}{
		{0, 60000, 0},
		{1, 1, rto},
		{1, segmentSize, rto},
		{1, segmentSize + 1, 2 * rto},
		{1, 10 * segmentSize, 10 * rto},
	} {
		s := &delayedStream{loss: c.loss, rto: rto, rng: rand.New(rand.NewPCG(1, 2))}
		if got := s.lossDelay(c.bytes); got != c.want {
			t.Errorf("loss %v, %d bytes: delay %v, want %v", c.loss, c.bytes, got, c.want)
		}
	}
	// At 10 % loss, 10,000 one-segment writes lose about 1,000 segments.
	s := &delayedStream{loss: 0.1, rto: rto, rng: rand.New(rand.NewPCG(3, 4))}
	var lost int
	for range 10000 {
		lost += int(s.lossDelay(100) / rto)
	}
	if lost < 900 || lost > 1100 {
		t.Errorf("10 %% loss lost %d of 10000 segments", lost)
	}
}

// twoNodes is one link of 25 ms between a publisher and a receiver.
const twoNodes = `
name: two
seed: 3
nodes: 2
topology: {kind: explicit, edges: [[0, 1, 25]]}
warmup: 3s
drain: 5s
`

// TestLinkLoss: with 20 % of segments lost, about a fifth of the messages
// arrive one RTO (2×25 ms + 200 ms) late, and none is lost.
func TestLinkLoss(t *testing.T) {
	rep := runScenario(t, twoNodes+`
link: {loss_pct: 20}
traffic: {publishers: 1, messages: 100, interval: 500ms, size: 200}
`)
	t.Logf("latency %+v", rep.LatencyMS)
	if rep.HonestDeliveryRatio != 1 {
		t.Errorf("delivery %.3f, want 1: loss must delay, not drop", rep.HonestDeliveryRatio)
	}
	if rep.LatencyMS.P50 > 40 || rep.LatencyMS.P95 < 270 {
		t.Errorf("latency p50 %.1f ms, p95 %.1f ms; want about 25 and at least 275 (one RTO late)", rep.LatencyMS.P50, rep.LatencyMS.P95)
	}
}

// TestLinkBandwidth: 10 KB every 50 ms is 1.6 Mbit/s; on a 0.8 Mbit/s link
// the queue grows once the one second of burst is spent, so the last
// messages arrive about a second late instead of after 25 ms.
func TestLinkBandwidth(t *testing.T) {
	const traffic = "traffic: {publishers: 1, messages: 40, interval: 50ms, size: 10000}\n"
	for _, c := range []struct {
		link     string
		min, max float64 // bounds on the max latency, ms
	}{
		{"link: {}\n", 25, 60},
		{"link: {bandwidth_mbps: 0.8}\n", 600, 3000},
	} {
		rep := runScenario(t, twoNodes+c.link+traffic)
		t.Logf("%s latency %+v", c.link, rep.LatencyMS)
		if rep.HonestDeliveryRatio != 1 || rep.LatencyMS.Max < c.min || rep.LatencyMS.Max > c.max {
			t.Errorf("%s: delivery %.3f, max latency %.1f ms; want 1 and %v..%v ms", c.link, rep.HonestDeliveryRatio, rep.LatencyMS.Max, c.min, c.max)
		}
	}
}

package node

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestDurationsSnapshot(t *testing.T) {
	h := newDurations([]float64{1e-3, 1e-2})
	for _, d := range []time.Duration{500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, time.Second, -time.Second} {
		h.observe(d)
	}
	got := h.snapshot()
	// -1 s counts in the first bucket and adds nothing to the sum.
	if want := []uint64{3, 4}; !slices.Equal(got.Counts, want) {
		t.Errorf("cumulative counts %v, want %v", got.Counts, want)
	}
	if got.Count != 5 {
		t.Errorf("count %d, want 5", got.Count)
	}
	if want := 1.0035; got.Sum < want-1e-9 || got.Sum > want+1e-9 {
		t.Errorf("sum %v s, want %v", got.Sum, want)
	}
}

// TestTimingsCountEveryEnvelope: a publish is timed once by the sealing
// histogram and, on the receiving node, once by the validation one.
func TestTimingsCountEveryEnvelope(t *testing.T) {
	a := startNode(t, LocalConfig())
	b := startPeer(t, a, LocalConfig())
	s, err := b.Subscribe("timed")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.Publish(ctx, "timed", []byte("x"), WithMinPeers(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(ctx); err != nil {
		t.Fatal(err)
	}
	if got := a.SealTimes(); got.Count != 1 || got.Sum <= 0 {
		t.Errorf("publisher's seal times: %+v, want one observation", got)
	}
	if got := b.ValidateTimes(); got.Count < 1 || got.Sum <= 0 || got.Counts[len(got.Counts)-1] > got.Count {
		t.Errorf("receiver's validate times: %+v, want at least one observation", got)
	}
}

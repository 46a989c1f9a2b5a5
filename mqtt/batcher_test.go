package mqtt

import (
	"fmt"
	"testing"
	"time"
)

// TestBatcher steps the pure batching core through time.
func TestBatcher(t *testing.T) {
	t0 := time.Unix(1_795_000_000, 0)
	msg := func(topic string, n int) *item {
		return &item{entry: Entry{ClientID: "c", Topic: topic, Payload: make([]byte, n)}}
	}
	type step struct {
		at    time.Duration // since t0
		add   string        // topic to add a message on ("" for none)
		size  int
		due   []int // sizes of the batches due at this step, in order
		open  bool  // whether a batch is still open afterwards
		until time.Duration
	}
	for _, tc := range []struct {
		name                 string
		maxEntries, maxBytes int
		steps                []step
	}{
		{"linger closes a batch", 10, 1 << 20, []step{
			{at: 0, add: "a", size: 1, due: nil, open: true, until: 20 * time.Millisecond},
			{at: 5 * time.Millisecond, add: "a", size: 1, due: nil, open: true, until: 20 * time.Millisecond},
			{at: 19 * time.Millisecond, due: nil, open: true, until: 20 * time.Millisecond},
			{at: 20 * time.Millisecond, due: []int{2}, open: false},
		}},
		{"count closes a batch at once", 2, 1 << 20, []step{
			{at: 0, add: "a", size: 1, open: true, until: 20 * time.Millisecond},
			{at: time.Millisecond, add: "a", size: 1, due: []int{2}, open: false},
		}},
		{"bytes close the batch before the message", 100, batchHeader + 2*(entryFixed+1+1+40) + 10, []step{
			{at: 0, add: "a", size: 40, open: true, until: 20 * time.Millisecond},
			{at: 0, add: "a", size: 40, open: true, until: 20 * time.Millisecond},
			{at: 0, add: "a", size: 40, due: []int{2}, open: true, until: 20 * time.Millisecond},
		}},
		{"topics batch apart", 10, 1 << 20, []step{
			{at: 0, add: "a", size: 1, open: true, until: 20 * time.Millisecond},
			{at: 10 * time.Millisecond, add: "b", size: 1, open: true, until: 20 * time.Millisecond},
			{at: 20 * time.Millisecond, due: []int{1}, open: true, until: 30 * time.Millisecond},
			{at: 30 * time.Millisecond, due: []int{1}, open: false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBatcher(20*time.Millisecond, tc.maxEntries, tc.maxBytes)
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				if s.add != "" {
					b.add(now, s.add, msg(s.add, s.size))
				}
				var sizes []int
				for _, ob := range b.due(now) {
					sizes = append(sizes, len(ob.items))
				}
				if fmt.Sprint(sizes) != fmt.Sprint(s.due) && !(len(sizes) == 0 && len(s.due) == 0) {
					t.Fatalf("step %d: due %v, want %v", i, sizes, s.due)
				}
				next, open := b.next()
				if open != s.open || open && !next.Equal(t0.Add(s.until)) {
					t.Fatalf("step %d: next %v (%v), want %v (%v)", i, next.Sub(t0), open, s.until, s.open)
				}
			}
		})
	}
}

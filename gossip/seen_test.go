package gossip

import (
	"testing"
	"time"
)

// TestSeenCacheGrowsAndEvictsOldest fills the cache past its bound through
// several ring growths and checks that it keeps exactly the newest max IDs
// and expires by age in insertion order.
func TestSeenCacheGrowsAndEvictsOldest(t *testing.T) {
	const max = 1000 // not a power of two: growth stops short of a doubling
	c := newSeenCache(max, time.Minute)
	t0 := time.Unix(1000, 0)
	id := func(i int) ID { return ID{byte(i >> 8), byte(i)} }
	for i := range 2500 {
		c.put(t0.Add(time.Duration(i)*time.Millisecond), id(i), seenEntry{verdict: Accept})
	}
	if c.len() != max || len(c.order) != max {
		t.Fatalf("len %d, ring %d; want %d", c.len(), len(c.order), max)
	}
	now := t0.Add(2500 * time.Millisecond)
	for i := range 2500 {
		_, ok := c.get(now, id(i), [64]byte{})
		if want := i >= 2500-max; ok != want {
			t.Fatalf("id %d cached = %v, want %v", i, ok, want)
		}
	}
	// Entries expire a minute after insertion, oldest first.
	later := t0.Add(time.Minute + 2000*time.Millisecond)
	c.expire(later)
	if got, want := c.len(), 2500-2001; got != want {
		t.Fatalf("after expiry %d entries, want %d", got, want)
	}
	if _, ok := c.get(later, id(2001), [64]byte{}); !ok {
		t.Fatal("the newest entries expired too")
	}
}

package gossip

import (
	"time"

	"github.com/bitmesh/bitmesh/identity"
)

// seenCache remembers the signature verdict for recently validated envelope
// IDs, so a duplicate never costs a second signature check. It is bounded in
// both entries and age; entries are evicted oldest first. Not safe for
// concurrent use: the Validator guards it.
type seenCache struct {
	ttl   time.Duration
	max   int
	byID  map[ID]seenEntry
	order []seenKey // insertion order: a ring, grown by doubling up to max
	head  int       // index of the oldest key in order
	n     int       // live keys in order
}

type seenEntry struct {
	sig     identity.Signature
	verdict Verdict
	err     error
}

type seenKey struct {
	id      ID
	expires time.Time
}

// initialSeenRing is the ring's first capacity. The cache grows to max
// only under traffic: allocating max up front cost an idle node about
// 19 MB at the default max of 65536, which a small board (or a simulator
// running thousands of nodes) should not pay for nothing.
const initialSeenRing = 256

func newSeenCache(max int, ttl time.Duration) *seenCache {
	return &seenCache{ttl: ttl, max: max, byID: make(map[ID]seenEntry), order: make([]seenKey, min(max, initialSeenRing))}
}

// grow doubles the ring (up to max), keeping the oldest key first.
func (c *seenCache) grow() {
	next := make([]seenKey, min(c.max, 2*len(c.order)))
	for i := range c.n {
		next[i] = c.order[(c.head+i)%len(c.order)]
	}
	c.order, c.head = next, 0
}

// get returns the cached verdict for (id, sig). A cached ID with a different
// signature is a miss: that copy's signature must be checked on its own.
func (c *seenCache) get(now time.Time, id ID, sig identity.Signature) (seenEntry, bool) {
	c.expire(now)
	e, ok := c.byID[id]
	if !ok || e.sig != sig {
		return seenEntry{}, false
	}
	return e, true
}

// put records e for id and reports whether id was already accepted under
// another signature, in which case e is not kept: a forged copy of a valid
// envelope must not evict the valid verdict, and a second valid signature
// over the same ID is a duplicate (PROTOCOL.md §9).
func (c *seenCache) put(now time.Time, id ID, e seenEntry) (acceptedOther bool) {
	c.expire(now)
	if old, ok := c.byID[id]; ok {
		if old.verdict == Accept {
			return old.sig != e.sig
		}
		c.byID[id] = e
		return false
	}
	if c.n == c.max {
		c.evictOldest()
	} else if c.n == len(c.order) {
		c.grow()
	}
	c.order[(c.head+c.n)%len(c.order)] = seenKey{id: id, expires: now.Add(c.ttl)}
	c.n++
	c.byID[id] = e
	return false
}

func (c *seenCache) expire(now time.Time) {
	for c.n > 0 && !now.Before(c.order[c.head].expires) {
		c.evictOldest()
	}
}

func (c *seenCache) evictOldest() {
	delete(c.byID, c.order[c.head].id)
	c.order[c.head] = seenKey{}
	c.head = (c.head + 1) % len(c.order)
	c.n--
}

func (c *seenCache) len() int { return len(c.byID) }

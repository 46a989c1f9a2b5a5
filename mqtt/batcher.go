package mqtt

import "time"

// batcher is the pure core of batching: it groups messages by mesh topic
// and says when a group is due, given the time. It does no IO and keeps no
// clock; the gateway's flush loop feeds it and carries out its decisions.
// Not safe for concurrent access.
type batcher struct {
	linger               time.Duration
	maxEntries, maxBytes int
	open                 map[string]*openBatch // by mesh topic
	ready                []*openBatch          // closed, oldest first
}

// openBatch is one topic's messages waiting to be sealed together.
type openBatch struct {
	topic string
	first time.Time // when its first message arrived
	items []*item
	bytes int
}

func newBatcher(linger time.Duration, maxEntries, maxBytes int) *batcher {
	return &batcher{linger: linger, maxEntries: maxEntries, maxBytes: maxBytes, open: make(map[string]*openBatch)}
}

// add puts it into its topic's batch at now. A batch that it would make
// too big is closed first; one it fills is closed after.
func (b *batcher) add(now time.Time, topic string, it *item) {
	size := it.entry.EncodedSize()
	ob := b.open[topic]
	if ob != nil && ob.bytes+size > b.maxBytes-batchHeader {
		b.close(topic)
		ob = nil
	}
	if ob == nil {
		ob = &openBatch{topic: topic, first: now}
		b.open[topic] = ob
	}
	ob.items = append(ob.items, it)
	ob.bytes += size
	if len(ob.items) >= b.maxEntries {
		b.close(topic)
	}
}

func (b *batcher) close(topic string) {
	if ob := b.open[topic]; ob != nil {
		delete(b.open, topic)
		b.ready = append(b.ready, ob)
	}
}

// due closes the batches whose linger ended by now and returns every
// closed batch, oldest first, emptying the ready list.
func (b *batcher) due(now time.Time) []*openBatch {
	for topic, ob := range b.open {
		if !now.Before(ob.first.Add(b.linger)) {
			b.close(topic)
		}
	}
	out := b.ready
	b.ready = nil
	return out
}

// next is when the earliest open batch's linger ends; ok is false when no
// batch is open.
func (b *batcher) next() (t time.Time, ok bool) {
	for _, ob := range b.open {
		if d := ob.first.Add(b.linger); !ok || d.Before(t) {
			t, ok = d, true
		}
	}
	return t, ok
}

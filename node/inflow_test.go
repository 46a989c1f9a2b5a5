package node

import (
	"testing"
	"time"

	pb "github.com/libp2p/go-libp2p-pubsub/pb"
)

func TestInflowCongestion(t *testing.T) {
	t0 := time.Now()
	f := newInflow()
	if f.congested(t0) {
		t.Fatal("congested before anything arrived")
	}
	msgs := make([]*pb.Message, 64)
	for i := range msgs {
		msgs[i] = &pb.Message{}
	}
	// Every envelope waits 500 ms: the average climbs past the mark.
	f.received(msgs, t0)
	validated := t0.Add(500 * time.Millisecond)
	for _, m := range msgs {
		f.validating(m, validated)
	}
	if !f.congested(validated) {
		t.Fatalf("not congested after waits of 500 ms (wait %v)", f.wait)
	}
	// Fails open: a measurement older than inflowStale says nothing.
	if f.congested(validated.Add(inflowStale)) {
		t.Error("still congested with no validation for inflowStale")
	}
	// A short wait ends it.
	m := &pb.Message{}
	f.received([]*pb.Message{m}, validated)
	f.validating(m, validated.Add(time.Millisecond))
	if f.congested(validated.Add(time.Millisecond)) {
		t.Errorf("congested after a wait of 1 ms (wait %v)", f.wait)
	}
	// Unknown messages (local publishes) do not count; the table stays
	// bounded.
	f.validating(&pb.Message{}, validated)
	for range 3 {
		batch := make([]*pb.Message, maxArrivals/2+1)
		for i := range batch {
			batch[i] = &pb.Message{}
		}
		f.received(batch, t0)
	}
	if len(f.arrived) > maxArrivals {
		t.Errorf("%d arrivals kept, bound %d", len(f.arrived), maxArrivals)
	}
}

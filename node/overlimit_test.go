package node

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/antispam"
)

// overLimit has a publisher try rate envelopes a second (0: as fast as
// Publish returns), for d, on a node connected to a peer that enforces the
// default per-device limits. It
// returns how many Publish accepted and refused, and the peer's worst
// score for the publisher's device or peer.
func overLimit(tb testing.TB, rate int, d time.Duration) (accepted, refused int, peerScore uint32) {
	tb.Helper()
	pub := startNode(tb, LocalConfig())
	peer := startPeer(tb, pub, LocalConfig())
	sub, err := peer.Subscribe("t")
	if err != nil {
		tb.Fatal(err)
	}
	defer sub.Cancel()
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	waitForTopicPeers(tb, pub, "t", 1)

	var tick <-chan time.Time
	if rate > 0 {
		t := time.NewTicker(time.Second / time.Duration(rate))
		defer t.Stop()
		tick = t.C
	}
	for end := time.Now().Add(d); time.Now().Before(end); {
		if tick != nil {
			<-tick
		}
		_, err := pub.Publish(ctx, "t", []byte("reading"))
		switch {
		case err == nil:
			accepted++
		case errors.Is(err, ErrPublishRate):
			refused++
		default:
			tb.Fatalf("publish: %v", err)
		}
	}
	// Let the peer judge what arrived.
	time.Sleep(time.Second)
	scores, err := peer.Scores()
	if err != nil {
		tb.Fatal(err)
	}
	for _, s := range scores {
		if s.Subject == antispam.DeviceSubject(pub.DeviceID()) || s.Subject == antispam.PeerSubject(pub.PeerID()) {
			peerScore = max(peerScore, s.Score)
			if s.Banned {
				tb.Errorf("the peer banned %v", s.Subject)
			}
		}
	}
	return accepted, refused, peerScore
}

// TestPublishOverLimitNeverBansItself: a caller pushing far beyond the
// per-device rate (as fast as Publish returns: under the race detector a
// few hundred a second) gets refusals (ErrPublishRate) for the excess,
// and the node's peer never scores, let alone bans, its device.
func TestPublishOverLimitNeverBansItself(t *testing.T) {
	limit := int(DefaultConfig().Rate.PerSender)
	accepted, refused, score := overLimit(t, 0, 3*time.Second)
	if refused == 0 {
		t.Errorf("no publish refused at 10× the limit (%d accepted)", accepted)
	}
	// The own bucket: half the peers' burst, then the rate.
	if want := DefaultConfig().Rate.SenderBurst/2 + 3*limit; accepted > want+limit/10 {
		t.Errorf("%d accepted in 3 s, want at most about %d", accepted, want)
	}
	if score != 0 {
		t.Errorf("the peer scored the publisher %d", score)
	}
}

// BenchmarkPublishOverLimit pushes ten times the per-device rate for 60 s
// and reports the accepted rate over the limit (1 = exactly the limit;
// the own burst adds SenderBurst/2 over the minute).
//
//	go test ./node -run '^$' -bench PublishOverLimit -benchtime 1x
func BenchmarkPublishOverLimit(b *testing.B) {
	limit := DefaultConfig().Rate.PerSender
	for range b.N {
		accepted, refused, score := overLimit(b, int(10*limit), time.Minute)
		b.ReportMetric(float64(accepted)/60/float64(limit), "accepted/limit")
		b.ReportMetric(float64(refused), "refused")
		b.ReportMetric(float64(score), "peer-score")
		fmt.Printf("accepted %d, refused %d in 60 s; peer score %d\n", accepted, refused, score)
	}
}

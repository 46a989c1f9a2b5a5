package meshlog_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/anchor/meshlog"
	"github.com/bitmesh/bitmesh/anchor/ots"
	"github.com/bitmesh/bitmesh/node"

	"github.com/bitmesh/bitmesh/internal/testwait"
)

// newCalendar serves the OpenTimestamps calendar protocol: pending
// answers until confirmed is set, then a one-op path to a Bitcoin block
// header attestation.
func newCalendar(t *testing.T, confirmed *atomic.Bool) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var t *ots.Timestamp
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/digest":
			t = &ots.Timestamp{Attestations: []ots.Attestation{ots.PendingAttestation("http://" + r.Host)}}
		case strings.HasPrefix(r.URL.Path, "/timestamp/") && confirmed.Load():
			t = &ots.Timestamp{Ops: []ots.Branch{{Op: ots.Op{Tag: ots.OpSHA256},
				Stamp: &ots.Timestamp{Attestations: []ots.Attestation{ots.BitcoinAttestation(4242)}}}}}
		default:
			http.Error(w, "Pending confirmation in Bitcoin blockchain", http.StatusNotFound)
			return
		}
		b, _ := ots.MarshalTimestamp(t)
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestReceiptCarriesAnchor anchors a log's checkpoint with OpenTimestamps
// and expects receipts to carry the proof once the calendar confirms it.
func TestReceiptCarriesAnchor(t *testing.T) {
	var confirmed atomic.Bool
	cal := newCalendar(t, &confirmed)
	otsAnchorer, err := ots.NewAnchorer(ots.Config{Calendars: []string{cal.URL}})
	if err != nil {
		t.Fatal(err)
	}
	const topic = "sensors/anchored"
	lc := meshlog.DefaultConfig()
	lc.Topics = []string{topic}
	lc.CheckpointInterval = 50 * time.Millisecond
	lc.Anchorers = []anchor.Anchorer{otsAnchorer}
	ml, err := meshlog.New(lc)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(node.LocalConfig(), node.WithExtension(ml))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Let a few checkpoint ticks pass with nothing to anchor: they must
	// not use up the hour's anchoring slot.
	time.Sleep(10 * lc.CheckpointInterval)
	id, err := n.Publish(ctx, topic, []byte("dated"))
	if err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 10*time.Second, 10*time.Millisecond, func() error {
		if info := ml.Logs()[0]; len(info.Pending) == 0 {
			return fmt.Errorf("no anchor submitted: %+v", info)
		}
		return nil
	})
	confirmed.Store(true)
	testwait.For(t, 10*time.Second, 10*time.Millisecond, func() error {
		if info := ml.Logs()[0]; info.Anchored != 1 || len(info.Pending) != 0 {
			return fmt.Errorf("anchor not confirmed: %+v", info)
		}
		return nil
	})
	if info := ml.Logs()[0]; info.AnchoredBy[anchor.KindOpenTimestamps] != 1 || info.CheckpointTime.IsZero() || time.Since(info.CheckpointTime) > time.Minute {
		t.Errorf("log info after the anchor: anchored by %v, checkpoint signed at %v", info.AnchoredBy, info.CheckpointTime)
	}
	r, err := ml.Receipt(topic, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Anchors) != 1 || r.Anchors[0].Pending {
		t.Fatalf("receipt anchors %+v", r.Anchors)
	}
	origin := meshlog.Origin(n.NetworkName(), n.DeviceID(), topic)
	if _, err := anchor.VerifyReceipt(r, n.DeviceID(), origin, nil, 0); err != nil {
		t.Fatal(err)
	}
	at, err := anchor.VerifyAnchor(r.Anchors[0])
	if err != nil {
		t.Fatal(err)
	}
	// The calendar's path is one SHA-256 over the commitment, which the
	// proof's own ops lead to; the attestation must name its height.
	if at.BlockHeight != 4242 || at.MerkleRoot == ([32]byte{}) || at.MerkleRoot == sha256.Sum256(nil) {
		t.Fatalf("attestation %+v", at)
	}
}

package inventory_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/anchor/meshlog"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/inventory"
	"github.com/bitmesh/bitmesh/node"
)

// TestCertifiedObjectHasReceipt: a node that logs topic "objects/certified"
// shares an object with Certify set; the signed manifest lands in its
// Merkle log, and the log's receipt holds an envelope whose payload is
// that manifest: an offline-verifiable record of the object's bytes.
func TestCertifiedObjectHasReceipt(t *testing.T) {
	const topic = "objects/certified"
	lc := meshlog.DefaultConfig()
	lc.Topics = []string{topic}
	lc.CheckpointInterval = time.Hour
	logs, err := meshlog.New(lc)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg := node.LocalConfig()
	cfg.DataDir = t.TempDir()
	n, err := node.New(cfg, node.WithExtension(logs), node.WithExtension(inv))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	path, _ := randomFile(t, 100<<10)
	info, err := inv.Share(context.Background(), path, inventory.ShareOptions{Type: "config", Certify: topic})
	if err != nil {
		t.Fatal(err)
	}
	var envID gossip.ID
	if b, err := hex.DecodeString(info.Certified); err != nil || len(b) != len(envID) {
		t.Fatalf("certified envelope ID %q", info.Certified)
	} else {
		copy(envID[:], b)
	}
	if _, err := logs.Checkpoint(context.Background(), topic); err != nil {
		t.Fatal(err)
	}
	r, err := logs.Receipt(topic, envID)
	if err != nil {
		t.Fatal(err)
	}
	env, err := gossip.Decode(r.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	raw, _, err := inv.Export(info.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(env.Payload, raw) {
		t.Fatal("the logged envelope does not carry the object's manifest")
	}
	m, err := inventory.DecodeManifest(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := m.Verify(n.NetworkName()); err != nil || id != info.ID {
		t.Fatalf("logged manifest names %s (%v), want %s", id, err, info.ID)
	}
}

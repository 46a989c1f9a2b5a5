package mqtt

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/anchor"

	"github.com/bitmesh/bitmesh/internal/testwait"
)

// TestEntryProof: three messages published within one linger share an
// envelope; each one's proof leads from its own bytes to the batch root
// that the logged, signed envelope carries.
func TestEntryProof(t *testing.T) {
	requireMosquitto(t)
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Linger = 500 * time.Millisecond
	g := startGateway(t, cfg, "", []string{"sensors/t"})
	_, port, _ := net.SplitHostPort(g.gw.Addr())
	// One client, three messages: mosquitto_pub -l sends a line each.
	cmd := exec.Command("mosquitto_pub", "-p", port, "-q", "1", "-t", "sensors/t", "-l", "-i", "dev-1")
	cmd.Stdin = stringsReader("a\nbb\nccc\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v %s", err, out)
	}
	testwait.For(t, 5*time.Second, 10*time.Millisecond, func() error {
		if s := g.gw.Stats(); s[countBatchedMsgs] != 3 || s[countBatches] != 1 {
			return fmt.Errorf("stats %v", s)
		}
		return nil
	})
	if _, err := g.logs.Checkpoint(context.Background(), "sensors/t"); err != nil {
		t.Fatal(err)
	}
	info := g.logs.Logs()[0]
	rc, err := g.logs.InclusionProof("sensors/t", info.Size-1)
	if err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(idOf(rc))
	for i, want := range []string{"a", "bb", "ccc"} {
		p, err := g.gw.EntryProof("sensors/t", id, fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := hex.DecodeString(p.Leaf)
		var root [32]byte
		r, _ := hex.DecodeString(p.Root)
		copy(root[:], r)
		var path [][]byte
		for _, h := range p.Path {
			b, _ := hex.DecodeString(h)
			path = append(path, b)
		}
		if err := VerifyEntry(leaf, i, p.Entries, path, root); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		prc, err := anchor.ParseReceipt(p.Receipt)
		if err != nil {
			t.Fatalf("receipt: %v", err)
		}
		dev := g.n.DeviceID()
		if _, err := anchor.VerifyReceipt(prc, dev, "bitmesh/"+dev.String()+"/sensors/t", nil, 0); err != nil {
			t.Fatalf("receipt does not verify: %v", err)
		}
		b, err := DecodeBatch(mustPayload(t, rc))
		if err != nil || b.Root != root || string(b.Entries[i].Payload) != want || b.Entries[i].ClientID != "dev-1" {
			t.Fatalf("entry %d: %+v, root %x (%v)", i, b.Entries[i], b.Root, err)
		}
	}
	if _, err := g.gw.EntryProof("sensors/t", id, "3"); err == nil {
		t.Fatal("proof of an entry beyond the batch")
	}
}

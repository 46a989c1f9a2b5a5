package meshlog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/anchor/meshlog"
	"github.com/bitmesh/bitmesh/anchor/ots"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/node"

	"github.com/bitmesh/bitmesh/internal/testwait"
)

// startDataNode starts a node on dir with key, logging topic, connected to
// peers; lc adjusts the log config. The node is closed at the end of the
// test (closing twice is harmless).
func startDataNode(t *testing.T, dir string, key *identity.PrivateKey, topic string, peers []logNode, lc func(*meshlog.Config)) (*node.Node, *meshlog.MeshLog, error) {
	t.Helper()
	cfg := meshlog.DefaultConfig()
	cfg.Topics = []string{topic}
	cfg.CheckpointInterval = time.Hour
	cfg.CheckpointEvery = 1 << 20
	if lc != nil {
		lc(&cfg)
	}
	ml, err := meshlog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nc := node.LocalConfig()
	nc.DataDir, nc.Key = dir, key
	for _, p := range peers {
		for _, a := range p.n.Addrs() {
			nc.BootstrapPeers = append(nc.BootstrapPeers, a.String())
		}
	}
	n, err := node.New(nc, node.WithExtension(ml))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, ml, n.Start(context.Background())
}

// TestRestartKeepsCheckpoints restarts a node from its data directory
// twice: after its checkpoint was cosigned by a witness, and after the
// restarted node anchored that checkpoint with OpenTimestamps. Each time
// the checkpoint, its cosigner and receipts carrying both must survive.
func TestRestartKeepsCheckpoints(t *testing.T) {
	const topic = "sensors/kept"
	witness := startLogNodes(t, 1, topic)[0]
	key, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	n, ml, err := startDataNode(t, dir, key, topic, []logNode{witness}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range []string{topic, meshlog.Topic} {
		testwait.For(t, 15*time.Second, 20*time.Millisecond, func() error {
			if len(n.TopicPeers(tp)) == 0 {
				return fmt.Errorf("witness not on %s yet", tp)
			}
			return nil
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ids []gossip.ID
	for i := range 5 {
		id, err := n.Publish(ctx, topic, fmt.Appendf(nil, "kept %d", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := ml.Checkpoint(ctx, topic); err != nil {
		t.Fatal(err)
	}
	origin := meshlog.Origin(n.NetworkName(), key.DeviceID(), topic)
	witnesses := []identity.DeviceID{witness.n.DeviceID()}
	// receipt returns a receipt of every entry, each cosigned by the
	// witness and, if anchored, carrying one confirmed anchor.
	receipt := func(ml *meshlog.MeshLog, anchored bool) (anchor.Receipt, error) {
		var r anchor.Receipt
		for i, id := range ids {
			var err error
			if r, err = ml.Receipt(topic, id); err != nil {
				return r, err
			}
			if _, err := anchor.VerifyReceipt(r, key.DeviceID(), origin, witnesses, 1); err != nil {
				return r, fmt.Errorf("receipt %d: %w", i, err)
			}
			if !anchored {
				continue
			}
			if len(r.Anchors) != 1 || r.Anchors[0].Pending {
				return r, fmt.Errorf("receipt %d anchors %+v", i, r.Anchors)
			}
			if _, err := anchor.VerifyAnchor(r.Anchors[0]); err != nil {
				return r, fmt.Errorf("receipt %d: %w", i, err)
			}
		}
		return r, nil
	}
	testwait.For(t, 15*time.Second, 20*time.Millisecond, func() error {
		_, err := receipt(ml, false)
		return err
	})
	before := ml.Logs()[0]
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	// Restarted with an anchorer: it anchors the newest checkpoint, the
	// one signed before the restart.
	var confirmed atomic.Bool
	confirmed.Store(true)
	otsAnchorer, err := ots.NewAnchorer(ots.Config{Calendars: []string{newCalendar(t, &confirmed).URL}})
	if err != nil {
		t.Fatal(err)
	}
	anchoring := func(c *meshlog.Config) {
		c.CheckpointInterval = 20 * time.Millisecond
		c.Anchorers = []anchor.Anchorer{otsAnchorer}
	}
	n, ml, err = startDataNode(t, dir, key, topic, nil, anchoring)
	if err != nil {
		t.Fatal(err)
	}
	// checkSame checks the log info after a restart; the anchor is
	// checked by the receipts.
	checkSame := func(ml *meshlog.MeshLog) {
		t.Helper()
		after := ml.Logs()[0]
		if after.Size != 5 || after.Checkpoint != 5 || !slices.Equal(after.Cosigners, before.Cosigners) {
			t.Fatalf("after restart %+v, before %+v", after, before)
		}
	}
	checkSame(ml)
	if _, err := receipt(ml, false); err != nil {
		t.Fatalf("cosigned receipt after restart: %v", err)
	}
	var anchored anchor.Receipt
	testwait.For(t, 15*time.Second, 20*time.Millisecond, func() error {
		anchored, err = receipt(ml, true)
		return err
	})
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	n, ml, err = startDataNode(t, dir, key, topic, nil, anchoring)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	checkSame(ml)
	if got := ml.Logs()[0].Anchored; got != 5 {
		t.Fatalf("anchored size %d after restart, want 5", got)
	}
	r, err := receipt(ml, true)
	if err != nil {
		t.Fatalf("anchored receipt after restart: %v", err)
	}
	if !bytes.Equal(r.Checkpoint, anchored.Checkpoint) || !bytes.Equal(r.Anchors[0].Proof, anchored.Anchors[0].Proof) {
		t.Fatalf("receipt after restart against another checkpoint or anchor")
	}
	// Asked again, the node returns the checkpoint signed before the
	// restarts rather than signing the same size anew.
	latest, err := ml.Checkpoint(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if _, cosigners, err := anchor.VerifyCosignatures(latest, key.DeviceID(), witnesses, origin); err != nil || len(cosigners) != 1 {
		t.Fatalf("newest checkpoint after restart: cosigners %v, %v", cosigners, err)
	}
}

// TestStartRefusesLogBehind signs a checkpoint of 6 entries, then starts
// the node on copies of its store whose log lost or changed entries, and
// expects ErrLogBehind naming the file instead of a second tree for a
// signed size.
func TestStartRefusesLogBehind(t *testing.T) {
	const topic = "sensors/behind"
	const signed = 6
	key, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	n, ml, err := startDataNode(t, src, key, topic, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range signed {
		if _, err := n.Publish(ctx, topic, fmt.Appendf(nil, "entry %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ml.Checkpoint(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		leaves  func(leaves [][]byte) [][]byte // the copy's leaves
		wantErr error
	}{
		{"intact", func(l [][]byte) [][]byte { return l }, nil},
		{"grew since", func(l [][]byte) [][]byte { return append(l, []byte("later 1"), []byte("later 2")) }, nil},
		{"entries lost", func(l [][]byte) [][]byte { return l[:signed-2] }, meshlog.ErrLogBehind},
		{"all entries lost", func(l [][]byte) [][]byte { return nil }, meshlog.ErrLogBehind},
		{"entry replaced", func(l [][]byte) [][]byte { return append(l[:signed-1:signed-1], []byte("forged")) }, meshlog.ErrLogBehind},
		{"entry replaced below more", func(l [][]byte) [][]byte {
			return append(append(l[:2:2], []byte("forged")), l[3:]...)
		}, meshlog.ErrLogBehind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			copyStore(t, filepath.Join(src, "anchor.db"), filepath.Join(dir, "anchor.db"), tt.leaves)
			n, ml, err := startDataNode(t, dir, key, topic, nil, nil)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Start: %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), filepath.Join(dir, "anchor.db")) || !strings.Contains(err.Error(), "bitmesh repair") {
					t.Fatalf("error does not name the file and the way out: %v", err)
				}
				return
			}
			defer n.Close()
			if got := ml.Logs()[0].Checkpoint; got != signed {
				t.Fatalf("checkpoint size %d after start, want %d", got, signed)
			}
		})
	}
}

// copyStore writes a store at dst holding src's meta records and its
// logs' leaves passed through edit.
func copyStore(t *testing.T, src, dst string, edit func([][]byte) [][]byte) {
	t.Helper()
	from, err := anchor.OpenBoltStore(src)
	if err != nil {
		t.Fatal(err)
	}
	defer from.Close()
	to, err := anchor.OpenBoltStore(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer to.Close()
	names, err := from.Names()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		size, err := from.Size(name)
		if err != nil {
			t.Fatal(err)
		}
		leaves, err := from.Leaves(name, 0, int(size))
		if err != nil {
			t.Fatal(err)
		}
		if leaves = edit(leaves); len(leaves) > 0 {
			l, err := anchor.OpenLog(to, name)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Append(leaves); err != nil {
				t.Fatal(err)
			}
			l.Close()
		}
		keys, err := from.MetaKeys(name, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			t.Fatalf("log %q has no stored checkpoint", name)
		}
		for _, k := range keys {
			v, err := from.Meta(name, k)
			if err != nil {
				t.Fatal(err)
			}
			if err := to.PutMeta(name, k, v); err != nil {
				t.Fatal(err)
			}
		}
	}
}

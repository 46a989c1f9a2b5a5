package meshlog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
)

// mountSmallDisk mounts a tmpfs of size on a new directory for the test
// and unmounts it at the end. Mounting needs root: CI runs the tests as
// root, so there a failure fails the test; elsewhere it skips it.
func mountSmallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("mounting a %s tmpfs (needs root): %v: %s", size, err, bytes.TrimSpace(out))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, bytes.TrimSpace(out))
		}
	})
	return dir
}

// TestPublishOnFullDisk fills a 1 MiB disk with a logged topic: the
// publish that does not fit fails with the store's error and is counted,
// and the store, reopened, holds a valid log with every publish that
// succeeded.
func TestPublishOnFullDisk(t *testing.T) {
	const topic = "sensors/full"
	dir := mountSmallDisk(t, "1m")
	key, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	n, ml, err := startDataNode(t, dir, key, topic, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	payload := func(i int) []byte {
		return append(fmt.Appendf(nil, "reading %d ", i), bytes.Repeat([]byte{'x'}, 16<<10)...)
	}
	published := map[string]bool{}
	var pubErr error
	for i := 0; pubErr == nil; i++ {
		if i == 200 { // 3 MiB of payloads
			t.Fatalf("%d publishes fit on a 1 MiB disk", i)
		}
		if _, pubErr = n.Publish(ctx, topic, payload(i)); pubErr == nil {
			published[string(payload(i))] = true
		}
	}
	if len(published) == 0 {
		t.Fatalf("first publish failed: %v", pubErr)
	}
	t.Logf("publish %d on the full disk: %v", len(published), pubErr)
	if !errors.Is(pubErr, syscall.ENOSPC) && !strings.Contains(pubErr.Error(), syscall.ENOSPC.Error()) {
		t.Fatalf("publish on a full disk: %v, want the store's no-space error", pubErr)
	}
	if got := ml.Logs()[0].Refused["store-error"]; got != 1 {
		t.Fatalf("store-error refusals %d, want 1", got)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := anchor.OpenBoltStore(filepath.Join(dir, "anchor.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := anchor.OpenLog(s, "topic/"+topic)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Verify(); err != nil {
		t.Fatal(err)
	}
	for i := range l.Size() {
		leaf, err := l.Leaf(i)
		if err != nil {
			t.Fatal(err)
		}
		env, err := gossip.Decode(leaf)
		if err != nil {
			t.Fatal(err)
		}
		delete(published, string(env.Payload))
	}
	if len(published) > 0 {
		t.Fatalf("%d successful publishes missing from the log (size %d)", len(published), l.Size())
	}
}

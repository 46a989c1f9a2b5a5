package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/node/control"
)

// TestNodeCrashKeepsAcknowledgedLogEntries kills a `bitmesh node
// --log-topic` process with SIGKILL in the middle of publishing, 50 times.
// A publish acknowledged by the control API has been validated and
// appended durably (the log appends from inside the validator, and a local
// publish is validated before Publish returns), so after every kill each
// acknowledged envelope must be in the log, and the whole tree recomputed
// from its leaves must match every stored node and root.
func TestNodeCrashKeepsAcknowledgedLogEntries(t *testing.T) {
	if testing.Short() {
		t.Log("-short: skipping the crash test")
		return
	}
	const topic = "crash/readings"
	bin := buildBitmesh(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	acked := map[gossip.ID]bool{}
	for cycle := range 50 {
		cmd := exec.Command(bin, "node", "--data", dir, "--no-mdns", "--no-nat", "--log-level", "warn",
			"--listen", "/ip4/127.0.0.1/tcp/0", "--log-topic", topic, "--checkpoint-interval", "1h")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		stderr := &syncBuffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var ev readyEvent
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || json.Unmarshal([]byte(line), &ev) != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("cycle %d: node not ready (%v): %s", cycle, err, stderr)
		}
		c := control.NewClient(control.Endpoint{Addr: ev.API, Token: readToken(t, dir)})
		ctx, cancel := context.WithCancel(context.Background())
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					id, err := c.Publish(ctx, topic, fmt.Appendf(nil, "cycle %d writer %d entry %d", cycle, w, i), 0)
					if err != nil {
						return // the node is gone: not acknowledged
					}
					b, err := hex.DecodeString(id)
					if err != nil || len(b) != len(gossip.ID{}) {
						t.Errorf("publish returned ID %q", id)
						return
					}
					mu.Lock()
					acked[gossip.ID(b)] = true
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(50+rng.IntN(200)) * time.Millisecond) // let appends run, then crash mid-stream
		cmd.Process.Kill()
		cmd.Wait()
		cancel()
		wg.Wait()
		c.Close()
		checkLogAfterCrash(t, cycle, filepath.Join(dir, "anchor.db"), "topic/"+topic, acked)
	}
	if len(acked) < 500 {
		t.Fatalf("only %d publishes acknowledged over 50 cycles: the test did not exercise the log", len(acked))
	}
	t.Logf("%d acknowledged entries survived 50 SIGKILLs", len(acked))
}

func readToken(t *testing.T, dir string) string {
	t.Helper()
	e, err := control.ReadEndpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	return e.Token
}

// checkLogAfterCrash opens the killed node's log, recomputes it and looks
// for every acknowledged envelope.
func checkLogAfterCrash(t *testing.T, cycle int, path, name string, acked map[gossip.ID]bool) {
	t.Helper()
	store, err := anchor.OpenBoltStore(path)
	if err != nil {
		t.Fatalf("cycle %d: %v", cycle, err)
	}
	defer store.Close()
	l, err := anchor.OpenLog(store, name)
	if err != nil {
		t.Fatalf("cycle %d: reopening the log: %v", cycle, err)
	}
	defer l.Close()
	if err := l.Verify(); err != nil {
		t.Fatalf("cycle %d: %v", cycle, err)
	}
	have := make(map[gossip.ID]bool, l.Size())
	for i := range l.Size() {
		leaf, err := l.Leaf(i)
		if err != nil {
			t.Fatal(err)
		}
		have[gossip.MessageID(leaf)] = true
	}
	for id := range acked {
		if !have[id] {
			t.Fatalf("cycle %d: acknowledged envelope %x lost (log has %d entries)", cycle, id, l.Size())
		}
	}
}

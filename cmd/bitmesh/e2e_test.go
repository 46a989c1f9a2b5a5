package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/node"
	"github.com/bitmesh/bitmesh/node/control"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// proc is a bitmesh command run from this test binary.
type proc struct {
	cmd    *exec.Cmd
	stdout io.ReadCloser
	stderr *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func bitmesh(t *testing.T, ctx context.Context, args ...string) *proc {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "BITMESH_TEST_MAIN=1")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	p := &proc{cmd: cmd, stderr: &syncBuffer{}}
	cmd.Stderr = p.stderr
	var err error
	if p.stdout, err = cmd.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return p
}

// startNodeProc starts `bitmesh node` and returns its ready event.
func startNodeProc(t *testing.T, dataDir string, extra ...string) (*proc, readyEvent) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	args := append([]string{"node", "--data", dataDir, "--no-mdns", "--no-nat", "--log-level", "debug",
		"--listen", "/ip4/127.0.0.1/tcp/0", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1"}, extra...)
	p := bitmesh(t, ctx, args...)
	t.Cleanup(func() {
		cancel() // SIGTERM: the node shuts down cleanly
		if err := p.cmd.Wait(); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("node %s exited with %v; stderr:\n%s", dataDir, err, p.stderr)
		}
	})
	line, err := bufio.NewReader(p.stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("node never became ready: %v; stderr:\n%s", err, p.stderr)
	}
	var ev readyEvent
	if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Event != "ready" {
		t.Fatalf("ready line %q: %v", line, err)
	}
	return p, ev
}

func waitFor(t *testing.T, total time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(total)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", total, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTwoNodeProcesses is the walking skeleton end to end: two `bitmesh
// node` processes on loopback, the second bootstrapped from the first's
// ready address; a raw GossipSub peer injects a tampered envelope and one
// from another network into the second; then 100 `bitmesh pub` on the first
// all arrive in `bitmesh sub --count 100` on the second with the sender's
// device ID, and the forgeries never do.
func TestTwoNodeProcesses(t *testing.T) {
	if testing.Short() {
		t.Log("-short: skipping the multi-process test")
		return
	}
	const topic = "e2e/readings"
	dirA, dirB := t.TempDir(), t.TempDir()
	_, readyA := startNodeProc(t, dirA)
	nodeB, readyB := startNodeProc(t, dirB, "--bootstrap", readyA.Addrs[0])

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sub := bitmesh(t, ctx, "sub", "--data", dirB, "--count", "100", topic)
	waitFor(t, 30*time.Second, "sub to subscribe", func() bool { return strings.Contains(sub.stderr.String(), "subscribed to") })

	// The forger: a plain GossipSub peer without bitmesh validation.
	injectForgeries(t, ctx, readyB, topic)
	waitFor(t, 30*time.Second, "node B to reject both forgeries", func() bool {
		logs := nodeB.stderr.String()
		return strings.Contains(logs, "gossip: bad signature") && strings.Contains(logs, "gossip: wrong network")
	})

	// Each message is a separate `bitmesh pub` process of the real binary,
	// as a user's shell would run it.
	bin := buildBitmesh(t)
	for i := 1; i <= 100; i++ {
		cmd := exec.CommandContext(ctx, bin, "pub", "--data", dirA, topic, fmt.Sprintf("reading %d", i))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("pub %d: %v\n%s", i, err, out)
		}
	}
	want := map[string]bool{}
	for i := 1; i <= 100; i++ {
		want[fmt.Sprintf("reading %d", i)] = true
	}
	sc := bufio.NewScanner(sub.stdout)
	got := 0
	for sc.Scan() {
		var m control.Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("sub printed %q: %v", sc.Text(), err)
		}
		if m.From != readyA.DeviceID {
			t.Fatalf("message %q from %s, want node A %s", sc.Text(), m.From, readyA.DeviceID)
		}
		if m.Data == nil || !want[*m.Data] {
			t.Fatalf("unexpected or repeated message %q", sc.Text())
		}
		delete(want, *m.Data)
		got++
	}
	if err := sub.cmd.Wait(); err != nil {
		t.Fatalf("sub: %v\n%s", err, sub.stderr)
	}
	if got != 100 {
		t.Fatalf("sub printed %d messages, want 100", got)
	}

	// Node B counted both forgeries it dropped, by reason.
	code, out, errOut := runArgs("stats", "--data", dirB, "--json")
	var st control.Stats
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil {
		t.Fatalf("stats --json: exit %d, %v, stderr %q", code, err, errOut)
	}
	if st.Drops["bad-signature"] != 1 || st.Drops["wrong-network"] != 1 || st.Peers < 1 || st.Validator.Validated < 100 {
		t.Errorf("stats of node B %+v: want one bad-signature and one wrong-network drop, a peer, 100+ validated", st)
	}
	if code, out, _ := runArgs("stats", "--data", dirB); code != 0 || !strings.Contains(out, "dropped: bad-signature") {
		t.Errorf("stats: exit %d, printed %q", code, out)
	}

	// ban and unban report what they did, as JSON with --json.
	stranger, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	subject := stranger.DeviceID().String()
	for _, tc := range []struct {
		args []string
		want banOutput
	}{
		{[]string{"ban", "--data", dirA, "--json", "--for", "1h", "--reason", "e2e", subject}, banOutput{Subject: subject, Banned: true, For: "1h0m0s", Reason: "e2e"}},
		{[]string{"unban", "--data", dirA, "--json", subject}, banOutput{Subject: subject}},
	} {
		code, out, errOut := runArgs(tc.args...)
		var b banOutput
		if err := json.Unmarshal([]byte(out), &b); code != 0 || err != nil || b != tc.want {
			t.Fatalf("%v: exit %d, printed %q (%v), stderr %q; want %+v", tc.args, code, out, err, errOut, tc.want)
		}
	}
}

// buildBitmesh builds the bitmesh binary without the race detector: a
// race-instrumented process takes about a second just to start.
func buildBitmesh(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bitmesh")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/bitmesh/bitmesh/cmd/bitmesh").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func injectForgeries(t *testing.T, ctx context.Context, target readyEvent, topic string) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithMessageIdFn(gossip.PubSubMessageID), pubsub.WithNoAuthor(), pubsub.WithFloodPublish(true))
	if err != nil {
		t.Fatal(err)
	}
	tp, err := ps.Join("bitmesh/" + node.DefaultNetwork + "/" + topic)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tp.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Cancel()
		tp.Close()
		cancel()
		h.Close()
	})
	ma, err := multiaddr.NewMultiaddr(target.Addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	pi, err := peer.AddrInfoFromP2pAddr(ma)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctx, *pi); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the forger to see the node on the topic", func() bool { return len(tp.ListPeers()) > 0 })

	key, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	seal := func(network, payload string) []byte {
		env := &gossip.Envelope{Network: gossip.NetworkFromName(network), Time: time.Now(), Seq: 1, Topic: topic, Payload: []byte(payload)}
		raw, _, err := env.Seal(key)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	tampered := seal(node.DefaultNetwork, "forged reading")
	tampered[len(tampered)-identity.SignatureSize-9-1] ^= 0x01 // last payload byte
	for _, raw := range [][]byte{tampered, seal("othernet", "foreign reading")} {
		if err := tp.Publish(ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
}

package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/mqtt"
)

var (
	crashMessages = flag.Int("mqtt-crash-messages", 10_000, "QoS 1 messages TestMQTTGatewayKill9 sends")
	crashTrials   = flag.Int("mqtt-crash-trials", 10, "times TestMQTTGatewayKill9 kills the gateway with SIGKILL")
)

// gatewayProc is a `bitmesh node --mqtt` process that the test may kill.
type gatewayProc struct {
	cmd *exec.Cmd
	err *syncBuffer
}

func startGatewayProc(t *testing.T, args ...string) (*gatewayProc, readyEvent) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "BITMESH_TEST_MAIN=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // even if the test panics
	p := &gatewayProc{cmd: cmd, err: &syncBuffer{}}
	cmd.Stderr = p.err
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("gateway never became ready: %v; stderr:\n%s", err, p.err)
	}
	var ev readyEvent
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		t.Fatal(err)
	}
	return p, ev
}

// TestMQTTGatewayKill9: a device sends QoS 1 messages while the gateway is
// killed with SIGKILL at random moments and restarted on the same data.
// Every message the gateway acknowledged is in its log, which holds what
// it published to the mesh, and none is there twice. The defaults (10,000
// messages, 10 kills) are the issue's; -mqtt-crash-messages and
// -mqtt-crash-trials change them.
func TestMQTTGatewayKill9(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	args := []string{"node", "--data", filepath.Join(dir, "a"), "--no-mdns", "--no-nat", "--listen", "/ip4/127.0.0.1/tcp/0",
		"--mqtt", fmt.Sprintf("127.0.0.1:%d", port), "--log-topic", "sensors/t"}
	gw, _ := startGatewayProc(t, args...)
	defer func() {
		if gw != nil {
			_ = gw.cmd.Process.Kill()
			_ = gw.cmd.Wait()
		}
	}()

	// paho keeps each QoS 1 publish in its store until the PUBACK comes.
	// (Its tokens are no witness: when it resends a stored message after a
	// reconnection, it completes the original token at once, without an
	// error, before the gateway has answered the resend.)
	store := paho.NewMemoryStore()
	opts := paho.NewClientOptions().SetStore(store).AddBroker(fmt.Sprintf("tcp://127.0.0.1:%d", port)).SetClientID("crash-sensor").
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(50 * time.Millisecond).SetMaxReconnectInterval(100 * time.Millisecond).
		SetWriteTimeout(5 * time.Second)
	client := paho.NewClient(opts)
	if tok := client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer client.Disconnect(100)

	n := *crashMessages
	acked := make([]atomic.Bool, n)
	var errMu sync.Mutex
	tokenErrs := map[string]int{} // why paho gave up on a message, by error
	var wg sync.WaitGroup
	var sent, ackedCount atomic.Int64
	window := make(chan struct{}, 100) // messages in flight, as a device's MQTT library bounds them
	go func() {
		for i := range n {
			window <- struct{}{}
			tok := client.Publish("sensors/t", 1, false, fmt.Sprintf("m-%06d", i))
			sent.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch {
				case !tok.WaitTimeout(3 * time.Minute):
					errMu.Lock()
					tokenErrs["no PUBACK within 3 minutes"]++
					errMu.Unlock()
				case tok.Error() != nil:
					errMu.Lock()
					tokenErrs[tok.Error().Error()]++
					errMu.Unlock()
				default:
					acked[i].Store(true)
					ackedCount.Add(1)
				}
				<-window
			}()
		}
	}()

	for trial := range *crashTrials {
		time.Sleep(time.Duration(50+rand.IntN(400)) * time.Millisecond)
		if err := gw.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = gw.cmd.Wait()
		t.Logf("kill %d: %d messages sent, %d acknowledged", trial+1, sent.Load(), ackedCount.Load())
		for _, l := range strings.Split(gw.err.String(), "\n") {
			if strings.Contains(l, "mqtt:") {
				t.Logf("gateway said: %s", l)
			}
		}
		gw, _ = startGatewayProc(t, args...)
	}
	waitFor(t, 3*time.Minute, "every message sent", func() bool { return sent.Load() == int64(n) })
	wg.Wait()
	waitFor(t, time.Minute, "a PUBACK for every message (the client's store empty)", func() bool { return len(store.All()) == 0 })
	// A clean stop, then read the log the gateway kept.
	_ = gw.cmd.Process.Signal(syscall.SIGTERM)
	_ = gw.cmd.Wait()
	gw = nil

	logStore, err := anchor.OpenBoltStore(filepath.Join(dir, "a", "anchor.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer logStore.Close()
	l, err := anchor.OpenLog(logStore, "topic/sensors/t")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	seen := make([]int, n)
	for i := uint64(0); i < l.Size(); i++ {
		leaf, err := l.Leaf(i)
		if err != nil {
			t.Fatal(err)
		}
		env, err := gossip.Decode(leaf)
		if err != nil {
			t.Fatal(err)
		}
		b, err := mqtt.DecodeBatch(env.Payload)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Entries {
			var k int
			if _, err := fmt.Sscanf(string(e.Payload), "m-%06d", &k); err != nil || k < 0 || k >= n {
				t.Fatalf("entry %q", e.Payload)
			}
			seen[k]++
		}
	}
	var lost, dup, ackedN, unacked, missing int
	for i := range n {
		if seen[i] == 0 {
			missing++ // the client's store is empty: every message got its PUBACK
		}
		if acked[i].Load() {
			ackedN++
			if seen[i] == 0 {
				lost++
			}
		} else {
			unacked++
		}
		if seen[i] > 1 {
			dup++
		}
	}
	t.Logf("%d messages, %d kills: %d acknowledged, %d not, %d log entries in %d envelopes; %d acknowledged lost, %d duplicated",
		n, *crashTrials, ackedN, unacked, sum(seen), l.Size(), lost, dup)
	if lost != 0 || dup != 0 || missing != 0 {
		t.Fatalf("%d acknowledged messages lost, %d duplicated in the log, %d PUBACKed at last but not in the log", lost, dup, missing)
	}
	// paho fails the token of a message it was writing when the
	// connection broke (it does not resend that one): the device's library
	// gave up, not the gateway. A message with no answer at all would be
	// the gateway's fault.
	t.Logf("publishes the client library gave up on: %v", tokenErrs)
	if tokenErrs["no PUBACK within 3 minutes"] > 0 || n-ackedN > *crashTrials {
		t.Fatalf("only %d of %d messages acknowledged: %v", ackedN, n, tokenErrs)
	}
}

func sum(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}

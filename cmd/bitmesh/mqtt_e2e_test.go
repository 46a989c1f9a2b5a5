package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/bitmesh/bitmesh/mqtt"
)

// requireMosquitto fails the test when the Debian mosquitto packages are
// missing: the gateway's contract is checked against the real clients
// and broker, never a stand-in, so a machine without them cannot pass.
// It returns the broker's path: Debian puts it in /usr/sbin, which a
// user's PATH may lack.
func requireMosquitto(t *testing.T) string {
	t.Helper()
	for _, bin := range []string{"mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: install the real clients and broker with `apt-get install -y mosquitto mosquitto-clients` (.ci/run does)", bin)
		}
	}
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	t.Fatal("mosquitto (the broker) not found: `apt-get install -y mosquitto` (.ci/run does)")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// lineReader runs a command and collects its output lines.
type lineReader struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func runLines(t *testing.T, name string, args ...string) *lineReader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = os.Stderr
	// Dies with the test binary even when a timeout panic skips Cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &lineReader{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<16), 4<<20)
		for sc.Scan() {
			r.mu.Lock()
			r.lines = append(r.lines, sc.Text())
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
		_ = cmd.Wait()
	})
	return r
}

// find returns the first line containing s.
func (r *lineReader) find(s string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lines {
		if strings.Contains(l, s) {
			return l, true
		}
	}
	return "", false
}

// publishUntil publishes msg-N with mosquitto_pub until r holds a line
// with the message (the mesh needs a moment to form between fresh
// processes), and returns that line.
func publishUntil(t *testing.T, r *lineReader, msg string, pubArgs ...string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		m := fmt.Sprintf("%s-%d", msg, i)
		args := append(append([]string(nil), pubArgs...), "-m", m, "-q", "1")
		if out, err := exec.Command("mosquitto_pub", args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub %v: %v\n%s", args, err, out)
		}
		for end := time.Now().Add(700 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if l, ok := r.find(msg + "-"); ok {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q never arrived (published %d times)", msg, i+1)
		}
	}
}

func wrapped(t *testing.T, line string) mqtt.Delivered {
	t.Helper()
	d, err := mqtt.DecodeWrapper([]byte(line))
	if err != nil {
		t.Fatalf("not a wrapper: %q: %v", line, err)
	}
	return d
}

// TestMQTTGatewaysWithMosquitto is the gateway's contract, checked from
// outside with the real mosquitto clients and broker: `bitmesh node --mqtt`
// with the default mapping carries `mosquitto_pub -t sensors/t` on gateway
// A to `mosquitto_sub -t sensors/t` on gateway B with A's device ID as the
// signer; a real mosquitto broker bridged by gateway C carries messages
// both ways; and the receipt A publishes on the companion topic verifies
// offline with `bitmesh log verify`.
func TestMQTTGatewaysWithMosquitto(t *testing.T) {
	broker := requireMosquitto(t)
	dir := t.TempDir()
	pa, pb, pm := freePort(t), freePort(t), freePort(t)

	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n", pm)), 0o600); err != nil {
		t.Fatal(err)
	}
	runLines(t, broker, "-c", conf)

	_, a := startNodeProc(t, filepath.Join(dir, "a"), "--mqtt", fmt.Sprintf("127.0.0.1:%d", pa),
		"--log-topic", "sensors/t", "--checkpoint-every", "1")
	_, b := startNodeProc(t, filepath.Join(dir, "b"), "--mqtt", fmt.Sprintf("127.0.0.1:%d", pb), "--bootstrap", a.Addrs[0])
	_, c := startNodeProc(t, filepath.Join(dir, "c"), "--mqtt-bridge", fmt.Sprintf("tcp://127.0.0.1:%d", pm),
		"--mqtt-map", "sensors/t=sensors/t", "--bootstrap", a.Addrs[0], "--bootstrap", b.Addrs[0])
	if a.MQTT != fmt.Sprintf("127.0.0.1:%d", pa) || c.MQTT != "" {
		t.Fatalf("ready events name MQTT %q and %q", a.MQTT, c.MQTT)
	}

	subB := runLines(t, "mosquitto_sub", "-p", fmt.Sprint(pb), "-t", "sensors/t")
	subB5 := runLines(t, "mosquitto_sub", "-V", "5", "-p", fmt.Sprint(pb), "-t", "sensors/t", "-F", "%p|%P")
	subM := runLines(t, "mosquitto_sub", "-p", fmt.Sprint(pm), "-t", "sensors/t")
	rcpt := runLines(t, "mosquitto_sub", "-p", fmt.Sprint(pa), "-t", mqtt.ReceiptTopicPrefix+"sensors/t", "-q", "1")
	time.Sleep(300 * time.Millisecond) // the subscriptions reach the brokers

	// A → mesh → B, default mapping, with the signer.
	line := publishUntil(t, subB, "from-a", "-p", fmt.Sprint(pa), "-t", "sensors/t", "-i", "sensor-a")
	d := wrapped(t, line)
	if d.Signer != a.DeviceID || d.Client != "sensor-a" || d.Topic != "sensors/t" || !strings.HasPrefix(string(d.Payload), "from-a-") {
		t.Fatalf("B got %+v, want from-a-N signed by %s from client sensor-a", d, a.DeviceID)
	}
	// MQTT 5 subscribers get the bare payload, the signer in a user property.
	waitFor(t, 10*time.Second, "the message on B's MQTT 5 subscriber", func() bool { _, ok := subB5.find("from-a-"); return ok })
	if l, _ := subB5.find("from-a-"); !strings.Contains(l, "|") || !strings.Contains(l, mqtt.PropSigner+":"+a.DeviceID) ||
		!strings.Contains(l, mqtt.PropClient+":sensor-a") || strings.Contains(l, `"bitmesh"`) {
		t.Fatalf("MQTT 5 subscriber got %q, want the bare payload with %s:%s", l, mqtt.PropSigner, a.DeviceID)
	}
	// A → mesh → C → mosquitto.
	waitFor(t, 20*time.Second, "A's message on the mosquitto broker via C", func() bool { _, ok := subM.find("from-a-"); return ok })
	if l, _ := subM.find("from-a-"); wrapped(t, l).Signer != a.DeviceID {
		t.Fatalf("mosquitto got %q, want A's signer", l)
	}
	// mosquitto → C → mesh → B, signed by C; C does not echo it back.
	line = publishUntil(t, subB, "from-mosquitto", "-p", fmt.Sprint(pm), "-t", "sensors/t")
	if d := wrapped(t, line); d.Signer != c.DeviceID || d.Client != "bitmesh-gateway" {
		t.Fatalf("B got %+v from the bridge, want signer %s", d, c.DeviceID)
	}

	// No echo: what C carried from the mesh to mosquitto did not come back
	// into the mesh signed by C, and B got each message once.
	time.Sleep(time.Second)
	subB.mu.Lock()
	counts := map[string]int{}
	for _, l := range subB.lines {
		d := wrapped(t, l)
		counts[string(d.Payload)]++
		if d.Signer == c.DeviceID && strings.Contains(string(d.Payload), "from-a-") {
			t.Errorf("A's message came back into the mesh through C: %q", l)
		}
	}
	subB.mu.Unlock()
	for p, n := range counts {
		if n != 1 {
			t.Errorf("B got %q %d times", p, n)
		}
	}

	// The receipt of A's batch, from the companion topic, verifies.
	var receipt string
	waitFor(t, 30*time.Second, "a receipt on "+mqtt.ReceiptTopicPrefix+"sensors/t", func() bool {
		receipt, _ = rcpt.find(`"envelope"`)
		return receipt != ""
	})
	rf := filepath.Join(dir, "receipt.json")
	// The payload is the receipt file, newline included; the scanner cut it.
	if err := os.WriteFile(rf, []byte(receipt+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	verify := exec.Command(os.Args[0], "log", "verify", "--json", "--log-key", a.DeviceID,
		"--origin", "bitmesh/"+a.DeviceID+"/sensors/t", rf)
	verify.Env = append(os.Environ(), "BITMESH_TEST_MAIN=1")
	out, err := verify.CombinedOutput()
	if err != nil {
		t.Fatalf("bitmesh log verify: %v\n%s", err, out)
	}
	var v struct {
		Valid bool   `json:"valid"`
		From  string `json:"from"`
		Topic string `json:"topic"`
	}
	if err := json.Unmarshal(out, &v); err != nil || !v.Valid || v.From != a.DeviceID || v.Topic != "sensors/t" {
		t.Fatalf("log verify printed %s (%v)", out, err)
	}
}

// TestMQTTPasswd: `bitmesh mqtt passwd` prints a bcrypt hash of the line on
// stdin that --mqtt-user accepts, and refuses an empty password.
func TestMQTTPasswd(t *testing.T) {
	run := func(stdin string) (string, error) {
		cmd := exec.Command(os.Args[0], "mqtt", "passwd")
		cmd.Env = append(os.Environ(), "BITMESH_TEST_MAIN=1")
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	hash, err := run("s3cret\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("s3cret")); err != nil {
		t.Fatalf("hash %q: %v", hash, err)
	}
	if _, err := mqtt.ParseUser("alice:" + hash + ":sensors/#:"); err != nil {
		t.Fatal(err)
	}
	if _, err := run("\n"); err == nil {
		t.Fatal("an empty password was hashed")
	}
}

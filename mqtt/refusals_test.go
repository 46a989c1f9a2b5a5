package mqtt

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/bitmesh/bitmesh/internal/testwait"
)

// TestRefusals: every way a client is refused, with the real mosquitto
// clients (a raw socket for the malformed packet). Each is counted by its
// reason, and none of them puts anything on the mesh.
func TestRefusals(t *testing.T) {
	requireMosquitto(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Listen = "0.0.0.0:0"
	cfg.MaxPayload = 1024
	cfg.MaxBatchBytes = 64 << 10
	cfg.Users = []User{{Name: "alice", PasswordHash: string(hash), Publish: []string{"sensors/#"}, Subscribe: []string{"sensors/#"}}}
	g := startGateway(t, cfg, "", nil)
	_, port, _ := net.SplitHostPort(g.gw.Addr())
	remote := nonLoopbackIP(t)

	pub := func(args ...string) func() (string, error) {
		return func() (string, error) {
			out, err := exec.Command("mosquitto_pub", append([]string{"-p", port, "-q", "1"}, args...)...).CombinedOutput()
			return string(out), err
		}
	}
	for _, tc := range []struct {
		name    string
		send    func() (string, error)
		counter string
	}{
		{"anonymous from outside loopback", pub("-h", remote, "-t", "sensors/t", "-m", "x"), countAuthAnonymous},
		{"unknown user", pub("-h", "127.0.0.1", "-u", "mallory", "-P", "right", "-t", "sensors/t", "-m", "x"), countAuthUnknown},
		{"bad password", pub("-h", remote, "-u", "alice", "-P", "wrong", "-t", "sensors/t", "-m", "x"), countAuthPassword},
		{"ACL violation", pub("-h", remote, "-u", "alice", "-P", "right", "-t", "secrets/t", "-m", "x"), countACLPublish},
		{"receipt topic is the gateway's", pub("-h", "127.0.0.1", "-t", ReceiptTopicPrefix+"sensors/t", "-m", "x"), countACLPublish},
		{"oversized payload", pub("-h", "127.0.0.1", "-t", "sensors/t", "-m", strings.Repeat("x", 4096)), countOversize},
		{"malformed packet", func() (string, error) {
			c, err := net.Dial("tcp", "127.0.0.1:"+port)
			if err != nil {
				return "", err
			}
			defer c.Close()
			// A CONNECT whose protocol name is "MQTX": not MQTT at all.
			_, err = c.Write([]byte{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'X', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00})
			if err != nil {
				return "", err
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 16)
			n, err := c.Read(buf)
			return fmt.Sprintf("% x", buf[:n]), err
		}, countMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := g.gw.Stats()
			out, _ := tc.send()
			testwait.For(t, 5*time.Second, 10*time.Millisecond, func() error {
				if after := g.gw.Stats(); after[tc.counter] != before[tc.counter]+1 {
					return fmt.Errorf("%s: %d, want %d (client said %q)", tc.counter, after[tc.counter], before[tc.counter]+1, out)
				}
				return nil
			})
		})
	}
	// Nothing reached the batcher, let alone the mesh.
	if s := g.gw.Stats(); s[countReceived] != 0 || s[countBatches] != 0 {
		t.Fatalf("refused clients got messages through: %v", s)
	}
	// And the same user, rightly authenticated, gets through.
	if out, err := pub("-h", remote, "-u", "alice", "-P", "right", "-t", "sensors/t", "-m", "ok")(); err != nil {
		t.Fatalf("alice refused: %v %s", err, out)
	}
	testwait.For(t, 5*time.Second, 10*time.Millisecond, func() error {
		if s := g.gw.Stats(); s[countBatchedMsgs] != 1 || s[countAcked] != 1 {
			return fmt.Errorf("stats %v", s)
		}
		return nil
	})
}

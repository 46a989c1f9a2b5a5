package mqtt

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"

	"github.com/bitmesh/bitmesh/internal/testwait"
)

// TestDeviceSignedEnvelopeForwarded: a device that signs its own envelope
// and publishes it as its MQTT payload reaches the mesh unchanged: a
// subscriber on another gateway sees the device as the signer, not the
// gateway. A tampered one is refused by the gateway's node and counted.
func TestDeviceSignedEnvelopeForwarded(t *testing.T) {
	requireMosquitto(t)
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	a := startGateway(t, cfg, "", nil)
	b := startGateway(t, cfg, "", nil, a.n)
	_, pa, _ := net.SplitHostPort(a.gw.Addr())
	_, pb, _ := net.SplitHostPort(b.gw.Addr())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub := exec.CommandContext(ctx, "mosquitto_sub", "-p", pb, "-t", "sensors/t", "-C", "1")
	out, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = sub.Wait() }()
	testwait.For(t, 15*time.Second, 20*time.Millisecond, func() error {
		if len(a.n.TopicPeers("sensors/t")) == 0 {
			return fmt.Errorf("A sees no peer on sensors/t yet")
		}
		return nil
	})

	device, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	seal := func(payload string) []byte {
		env := &gossip.Envelope{Network: a.n.Network(), Time: time.Now(), Seq: 1, Topic: "sensors/t", Payload: []byte(payload)}
		raw, _, err := env.Seal(device)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	pubFile := func(raw []byte) error {
		f := filepath.Join(t.TempDir(), "env")
		if err := os.WriteFile(f, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		o, err := exec.Command("mosquitto_pub", "-V", "5", "-p", pa, "-t", "sensors/t", "-q", "1", "-f", f).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, o)
		}
		return nil
	}

	tampered := seal("forged")
	tampered[len(tampered)-1] ^= 1 // the signature no longer verifies
	_ = pubFile(tampered)          // MQTT 5: a failed PUBACK, mosquitto_pub may say so
	testwait.For(t, 5*time.Second, 10*time.Millisecond, func() error {
		if s := a.gw.Stats(); s[countMeshRefused] != 1 {
			return fmt.Errorf("stats %v", s)
		}
		return nil
	})

	if err := pubFile(seal("signed by the device")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("B's subscriber: %v", err)
	}
	d, err := DecodeWrapper([]byte(strings.TrimSpace(line)))
	if err != nil {
		t.Fatal(err)
	}
	if d.Signer != device.DeviceID().String() || string(d.Payload) != "signed by the device" || d.Entry != -1 {
		t.Fatalf("B got %+v, want the device %s as signer", d, device.DeviceID())
	}
	testwait.For(t, 5*time.Second, 10*time.Millisecond, func() error {
		if s := a.gw.Stats(); s[countForwarded] != 1 || s[countBatches] != 0 {
			return fmt.Errorf("stats %v", s)
		}
		return nil
	})
}

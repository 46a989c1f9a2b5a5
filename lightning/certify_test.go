package lightning_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/anchor/meshlog"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/lightning"
	"github.com/bitmesh/bitmesh/node"
)

// TestCertify: a device pays a gateway to log its own signed envelope and
// gets back a receipt that verifies offline against the gateway's log;
// an envelope signed by someone else is refused.
func TestCertify(t *testing.T) {
	const topic = "sensors/certified"
	net := lightning.NewInProcessNetwork(nil)
	lc := meshlog.DefaultConfig()
	lc.Topics = []string{topic}
	logs, err := meshlog.New(lc)
	if err != nil {
		t.Fatal(err)
	}
	gcfg := lightning.DefaultConfig()
	gcfg.Backend = net.Backend(0)
	gcfg.Certify = &lightning.CertifyConfig{PriceMsat: 500, Receipt: func(ctx context.Context, topic string, id gossip.ID) ([]byte, error) {
		if _, err := logs.Checkpoint(ctx, topic); err != nil {
			return nil, err
		}
		r, err := logs.Receipt(topic, id)
		if err != nil {
			return nil, err
		}
		return anchor.MarshalReceipt(r)
	}}
	gl, err := lightning.New(gcfg)
	if err != nil {
		t.Fatal(err)
	}
	gateway := start(t, node.LocalConfig(), node.WithExtension(gl), node.WithExtension(logs))

	key, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	dcfg := node.LocalConfig()
	dcfg.Key = key
	for _, a := range gateway.Addrs() {
		dcfg.BootstrapPeers = append(dcfg.BootstrapPeers, a.String())
	}
	bcfg := lightning.DefaultConfig()
	bcfg.Backend = net.Backend(10_000)
	dl, err := lightning.New(bcfg)
	if err != nil {
		t.Fatal(err)
	}
	device := start(t, dcfg, node.WithExtension(dl))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waitFor(t, 10*time.Second, "the device to connect", func() error {
		if len(device.Peers()) == 0 {
			return errors.New("no peer")
		}
		return nil
	})

	seal := func(k *identity.PrivateKey, payload string) []byte {
		env := &gossip.Envelope{Network: gossip.NetworkFromName(node.DefaultNetwork), Time: time.Now(), Seq: uint64(time.Now().UnixNano()), Topic: topic, Payload: []byte(payload)}
		raw, _, err := env.Seal(k)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	cred, err := dl.Buy(ctx, gateway.PeerID(), lightning.CertifyServiceName, 2)
	if err != nil {
		t.Fatal(err)
	}
	raw := seal(key, "reading 42")
	b, err := dl.Use(ctx, cred, 1, raw)
	if err != nil {
		t.Fatal(err)
	}
	r, err := anchor.ParseReceipt(b)
	if err != nil {
		t.Fatal(err)
	}
	env, err := anchor.VerifyReceipt(r, gateway.DeviceID(), meshlog.Origin(node.DefaultNetwork, gateway.DeviceID(), topic), nil, 0)
	if err != nil {
		t.Fatalf("receipt: %v", err)
	}
	if env.Sender != key.DeviceID() || string(env.Payload) != "reading 42" || gossip.MessageID(raw) != gossip.MessageID(r.Envelope) {
		t.Fatalf("receipt certifies %s's %q, want the device's envelope", env.Sender, env.Payload)
	}

	other, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	var refused *lightning.RefusedError
	if _, err := dl.Use(ctx, cred, 1, seal(other, "not mine")); !errors.As(err, &refused) {
		t.Fatalf("someone else's envelope: %v, want a refusal", err)
	}
}

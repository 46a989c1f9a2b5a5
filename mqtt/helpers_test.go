package mqtt

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/anchor/meshlog"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/node"
)

// requireMosquitto fails (never skips) without the real mosquitto tools.
func requireMosquitto(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: install the real clients with `apt-get install -y mosquitto mosquitto-clients` (.ci/run does)", bin)
		}
	}
}

type testGateway struct {
	n    *node.Node
	gw   *Gateway
	logs *meshlog.MeshLog
}

// startGateway starts a node on loopback with cfg's gateway, logging the
// topics given, connected to the peers given.
func startGateway(t testing.TB, cfg Config, dataDir string, logTopics []string, peers ...*node.Node) testGateway {
	t.Helper()
	lc := meshlog.DefaultConfig()
	lc.Topics = logTopics
	lc.CheckpointEvery = 1 << 20
	logs, err := meshlog.New(lc)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := New(cfg, logs)
	if err != nil {
		t.Fatal(err)
	}
	nc := node.LocalConfig()
	nc.DataDir = dataDir
	for _, p := range peers {
		for _, a := range p.Addrs() {
			nc.BootstrapPeers = append(nc.BootstrapPeers, fmt.Sprintf("%s/p2p/%s", a, p.PeerID()))
		}
	}
	n, err := node.New(nc, node.WithExtension(logs), node.WithExtension(gw))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return testGateway{n: n, gw: gw, logs: logs}
}

// nonLoopbackIP is an address of this machine outside loopback, from
// which a client counts as remote.
func nonLoopbackIP(t testing.TB) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	t.Fatal("this machine has no non-loopback IPv4 address to connect from as a remote client")
	return ""
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

func idOf(rc anchor.Receipt) []byte {
	id := gossip.MessageID(rc.Envelope)
	return id[:]
}

func mustPayload(t testing.TB, rc anchor.Receipt) []byte {
	t.Helper()
	env, err := gossip.Decode(rc.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	return env.Payload
}

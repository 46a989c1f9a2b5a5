// Command gateway is an MQTT gateway in a few lines: an embedded MQTT
// broker whose devices' messages are signed, timestamped, logged in a
// Merkle log and receipted on the mesh, and which delivers mesh messages
// to MQTT subscribers with their signer.
//
// Two gateways on one machine, the second joining through an address the
// first prints, then the mosquitto clients:
//
//	go run ./examples/gateway -data /tmp/gwa -mqtt 127.0.0.1:1883
//	go run ./examples/gateway -data /tmp/gwb -mqtt 127.0.0.1:1884 -bootstrap /ip4/127.0.0.1/tcp/PORT/p2p/16Uiu2...
//	mosquitto_sub -p 1884 -t sensors/t -V 5 -F '%p %P'     # the payload and its signer
//	mosquitto_sub -p 1883 -t bitmesh/receipt/sensors/t -N  # receipts, for bitmesh log verify
//	mosquitto_pub -p 1883 -t sensors/t -m 21.5 -q 1
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/bitmesh/bitmesh/anchor/meshlog"
	"github.com/bitmesh/bitmesh/mqtt"
	"github.com/bitmesh/bitmesh/node"
)

func main() {
	data := flag.String("data", "", "data directory: identity, log and the gateway's journal (empty: memory, a crash loses unsent batches)")
	listen := flag.String("mqtt", "127.0.0.1:1883", "MQTT broker address (anonymous clients from loopback only)")
	topics := flag.String("topics", "sensors/t", "comma-separated mesh topics to certify (log and receipt)")
	var bootstrap []string
	flag.Func("bootstrap", "full multiaddr of a peer to join through, ending in /p2p/<peer id> (repeatable)",
		func(s string) error { bootstrap = append(bootstrap, s); return nil })
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *data, *listen, strings.Split(*topics, ","), bootstrap); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, data, listen string, topics, bootstrap []string) error {
	// The logs certify what the gateway publishes: each batch is appended
	// before its QoS 1 messages are acknowledged.
	lc := meshlog.DefaultConfig()
	lc.Topics = topics
	lc.CheckpointInterval = 2 * time.Second // receipts within seconds, for the demo
	logs, err := meshlog.New(lc)
	if err != nil {
		return err
	}
	gc := mqtt.DefaultConfig()
	gc.Listen = listen
	gw, err := mqtt.New(gc, logs)
	if err != nil {
		return err
	}

	cfg := node.LocalConfig() // loopback, for trying it on one machine
	cfg.DataDir, cfg.BootstrapPeers = data, bootstrap
	n, err := node.New(cfg, node.WithExtension(logs), node.WithExtension(gw))
	if err != nil {
		return err
	}
	if err := n.Start(ctx); err != nil {
		return err
	}
	defer n.Close()

	fmt.Println("device ID:", n.DeviceID())
	for _, a := range n.Addrs() {
		fmt.Println("address:  ", a)
	}
	fmt.Println("MQTT:     ", gw.Addr())
	<-ctx.Done()
	fmt.Println("gateway counters:", gw.Stats())
	return nil
}

// Command embed shows how a Go program embeds a bitmesh node: it joins the
// mesh, says hello on a topic every five seconds and prints what others say.
//
// Try two on one machine, the second joining through an address the first
// prints:
//
//	go run ./examples/embed -local
//	go run ./examples/embed -local -bootstrap /ip4/127.0.0.1/tcp/PORT/p2p/16Uiu2...
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

	"github.com/bitmesh/bitmesh/node"
)

func main() {
	data := flag.String("data", "", "data directory for the identity key (empty: a fresh identity for this run only)")
	topic := flag.String("topic", "demo/hello", "topic to publish and subscribe on")
	local := flag.Bool("local", false, "loopback only, ephemeral ports, no mDNS (node.LocalConfig)")
	var bootstrap []string
	flag.Func("bootstrap", "full multiaddr of a peer to join through, ending in /p2p/<peer id> (repeatable or comma-separated)",
		func(s string) error { bootstrap = append(bootstrap, strings.Split(s, ",")...); return nil })
	flag.Parse()

	// Ctrl-C or SIGTERM cancels ctx, which ends the loops below.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Pick a preset, then change only what this program needs.
	cfg := node.DefaultConfig()
	if *local {
		cfg = node.LocalConfig()
	}
	cfg.DataDir = *data
	cfg.BootstrapPeers = bootstrap

	if err := run(ctx, cfg, *topic); err != nil {
		log.Fatal(err)
	}
}

// run returns only after the node is closed, so its deferred cleanup always
// happens (log.Fatal in main would skip it).
func run(ctx context.Context, cfg node.Config, topic string) error {
	// Two calls embed a node: New checks the config and loads the identity,
	// Start brings it onto the network.
	n, err := node.New(cfg)
	if err != nil {
		return err
	}
	if err := n.Start(ctx); err != nil {
		return err
	}
	defer n.Close() // leaves the mesh and stops the node's goroutines

	fmt.Println("device ID:", n.DeviceID())
	for _, a := range n.Addrs() {
		fmt.Println("address:  ", a) // give one of these to another node's -bootstrap
	}

	sub, err := n.Subscribe(topic)
	if err != nil {
		return err
	}
	defer sub.Cancel()

	// Read messages in their own goroutine: a subscription buffers only so
	// many, and drops new ones for a reader that falls behind.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := sub.Next(ctx)
			if err != nil {
				return // ctx cancelled or node closed
			}
			if m.Local {
				continue // our own message, delivered back to us
			}
			// Every message arrives verified: m.From is the device that signed it.
			fmt.Printf("%s %s: %s\n", m.From, m.Topic, m.Payload)
		}
	}()

	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			<-done
			fmt.Println("shutting down")
			return nil
		case <-tick.C:
			msg := fmt.Sprintf("hello from %s", n.DeviceID())
			if _, err := n.Publish(ctx, topic, []byte(msg)); err != nil && ctx.Err() == nil {
				log.Printf("publish: %v", err)
			}
		}
	}
}

package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/bitmesh/bitmesh/node"
)

// Two nodes on loopback: the second joins through the first, subscribes, and
// receives what the first publishes.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cfg := node.LocalConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	first, err := node.New(cfg)
	if err != nil {
		panic(err)
	}
	if err := first.Start(ctx); err != nil {
		panic(err)
	}
	defer first.Close()

	// The second node joins through the first's full addresses.
	for _, a := range first.Addrs() {
		cfg.BootstrapPeers = append(cfg.BootstrapPeers, a.String())
	}
	second, err := node.New(cfg)
	if err != nil {
		panic(err)
	}
	if err := second.Start(ctx); err != nil {
		panic(err)
	}
	defer second.Close()

	sub, err := second.Subscribe("demo/hello")
	if err != nil {
		panic(err)
	}
	defer sub.Cancel()

	// Wait until the first node sees the subscriber, then publish.
	if _, err := first.Publish(ctx, "demo/hello", []byte("hello mesh"), node.WithMinPeers(1)); err != nil {
		panic(err)
	}
	m, err := sub.Next(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(m.Payload))
	// Output: hello mesh
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/bitmesh/bitmesh/node/control"
)

func runPub(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newNodeCommand("pub", "pub [--data DIR] [--min-peers N] [--timeout D] [--json] TOPIC MESSAGE", stderr)
	fs := cmd.fs
	minPeers := fs.Int("min-peers", 1, "wait until this many peers subscribe to the topic (0: publish at once)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	asJSON := fs.Bool("json", false, "print the envelope ID as JSON")
	c, pos, err := cmd.open(args, 2, 2)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	id, err := c.Publish(ctx, pos[0], []byte(pos[1]), *minPeers)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(control.PublishResponse{ID: id})
	}
	_, err = fmt.Fprintln(stdout, id)
	return err
}

func runSub(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newNodeCommand("sub", "sub [--data DIR] [--count N] TOPIC", stderr)
	count := cmd.fs.Int("count", 0, "exit after this many messages (0: run until interrupted)")
	c, pos, err := cmd.open(args, 1, 1)
	if err != nil {
		return err
	}
	defer c.Close()
	enc := json.NewEncoder(stdout)
	seen := 0
	err = c.Subscribe(ctx, pos[0],
		func() { fmt.Fprintf(stderr, "subscribed to %s\n", pos[0]) },
		func(m control.Message) error {
			if err := enc.Encode(m); err != nil {
				return err
			}
			seen++
			if *count > 0 && seen >= *count {
				return control.ErrStop
			}
			return nil
		})
	if err != nil && ctx.Err() != nil && *count == 0 {
		return nil // interrupted: a normal way to stop an endless sub
	}
	return err
}

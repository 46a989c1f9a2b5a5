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
	fs := newFlagSet("pub", "pub [--data DIR] [--min-peers N] [--timeout D] [--json] TOPIC MESSAGE", stderr)
	var d dataFlags
	d.register(fs)
	minPeers := fs.Int("min-peers", 1, "wait until this many peers subscribe to the topic (0: publish at once)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	asJSON := fs.Bool("json", false, "print the envelope ID as JSON")
	pos, err := parse(fs, args, 2, 2)
	if err != nil {
		return err
	}
	c, err := control.Dial(d.dir)
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
	fs := newFlagSet("sub", "sub [--data DIR] [--count N] TOPIC", stderr)
	var d dataFlags
	d.register(fs)
	count := fs.Int("count", 0, "exit after this many messages (0: run until interrupted)")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	c, err := control.Dial(d.dir)
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

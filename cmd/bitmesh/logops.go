package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/bitmesh/bitmesh/node/control"
)

func runLogShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("log show", "log show [--data DIR] [--json]", stderr)
	var d dataFlags
	d.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	c, err := control.Dial(d.dir)
	if err != nil {
		return err
	}
	defer c.Close()
	logs, err := c.Logs(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(logs)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tSIZE\tCHECKPOINT\tWITNESSES\tORIGIN")
	for _, l := range logs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", l.Topic, l.Size, l.Checkpoint, len(l.Cosigners), l.Origin)
	}
	return tw.Flush()
}

func runLogCheckpoint(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("log checkpoint", "log checkpoint [--data DIR] TOPIC", stderr)
	var d dataFlags
	d.register(fs)
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	c, err := control.Dial(d.dir)
	if err != nil {
		return err
	}
	defer c.Close()
	note, err := c.Checkpoint(ctx, pos[0])
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, note)
	return err
}

// runLogReceipt serves `log receipt TOPIC ID` and `log proof TOPIC INDEX`.
func runLogReceipt(ctx context.Context, verb string, args []string, stdout, stderr io.Writer) error {
	synopsis := "log receipt [--data DIR] [--out FILE] TOPIC ENVELOPE-ID"
	if verb == "proof" {
		synopsis = "log proof [--data DIR] [--out FILE] TOPIC INDEX"
	}
	fs := newFlagSet("log "+verb, synopsis, stderr)
	var d dataFlags
	d.register(fs)
	out := fs.String("out", "", "write the receipt to FILE instead of standard output")
	pos, err := parse(fs, args, 2, 2)
	if err != nil {
		return err
	}
	var id string
	var index uint64
	if verb == "proof" {
		if index, err = strconv.ParseUint(pos[1], 10, 64); err != nil {
			return fmt.Errorf("INDEX: %w", err)
		}
	} else {
		id = pos[1]
	}
	c, err := control.Dial(d.dir)
	if err != nil {
		return err
	}
	defer c.Close()
	b, err := c.Receipt(ctx, pos[0], id, index)
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = stdout.Write(b)
		return err
	}
	return os.WriteFile(*out, b, 0o644)
}

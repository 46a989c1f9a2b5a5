package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/internal/atomicfile"
)

func runLogShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newNodeCommand("log show", "log show [--data DIR] [--json]", stderr)
	asJSON := cmd.fs.Bool("json", false, "print JSON")
	c, _, err := cmd.open(args, 0, 0)
	if err != nil {
		return err
	}
	defer c.Close()
	logs, err := listLogs(ctx, c)
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
	cmd := newNodeCommand("log checkpoint", "log checkpoint [--data DIR] [--json] TOPIC", stderr)
	asJSON := cmd.fs.Bool("json", false, "print the checkpoint's origin, size and root, and the signed note, as JSON")
	c, pos, err := cmd.open(args, 1, 1)
	if err != nil {
		return err
	}
	defer c.Close()
	note, err := signCheckpoint(ctx, c, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(checkpointJSON(pos[0], note))
	}
	_, err = io.WriteString(stdout, note)
	return err
}

// checkpointOutput is what `bitmesh log checkpoint --json` prints.
type checkpointOutput struct {
	Topic  string `json:"topic"`
	Origin string `json:"origin,omitempty"`
	Size   uint64 `json:"size"`
	Root   string `json:"root,omitempty"` // hex
	Note   string `json:"note"`           // the signed note, as printed without --json
}

// checkpointJSON describes a signed checkpoint note: its body is the text
// before the blank line that starts the signatures.
func checkpointJSON(topic, note string) checkpointOutput {
	out := checkpointOutput{Topic: topic, Note: note}
	body, _, ok := strings.Cut(note, "\n\n")
	if !ok {
		return out
	}
	if c, err := anchor.ParseCheckpoint([]byte(body + "\n")); err == nil {
		out.Origin, out.Size, out.Root = c.Origin, c.Size, hex.EncodeToString(c.Root[:])
	}
	return out
}

// runLogReceipt serves `log receipt TOPIC ID` and `log proof TOPIC INDEX`.
func runLogReceipt(ctx context.Context, verb string, args []string, stdout, stderr io.Writer) error {
	synopsis := "log receipt [--data DIR] [--out FILE] TOPIC ENVELOPE-ID"
	if verb == "proof" {
		synopsis = "log proof [--data DIR] [--out FILE] TOPIC INDEX"
	}
	cmd := newNodeCommand("log "+verb, synopsis, stderr)
	out := cmd.fs.String("out", "", "write the receipt to FILE instead of standard output")
	pos, err := parse(cmd.fs, args, 2, 2)
	if err != nil {
		return err
	}
	var id string
	var index uint64
	if verb == "proof" {
		if index, err = strconv.ParseUint(pos[1], 10, 64); err != nil {
			return usagef(cmd.fs, "INDEX %q: want a leaf index (0, 1, …)", pos[1])
		}
	} else {
		id = pos[1]
	}
	c, err := dialNode(cmd.data.dir)
	if err != nil {
		return err
	}
	defer c.Close()
	b, err := fetchReceipt(ctx, c, pos[0], id, index)
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = stdout.Write(b)
		return err
	}
	return atomicfile.Replace(*out, b, 0o644)
}

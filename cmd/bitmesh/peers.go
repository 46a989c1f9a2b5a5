package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

func runPeers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newNodeCommand("peers", "peers [--data DIR] [--json]", stderr)
	asJSON := cmd.fs.Bool("json", false, "print JSON")
	c, _, err := cmd.open(args, 0, 0)
	if err != nil {
		return err
	}
	defer c.Close()
	peers, err := c.Peers(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(peers)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SUBJECT\tCONNECTED\tSCORE\tBANNED UNTIL\tREASON")
	for _, p := range peers {
		until := "-"
		if p.BanUntil != nil {
			until = p.BanUntil.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%v\t%d\t%s\t%s\n", p.Subject, p.Connected, p.Score, until, terminalSafe(p.BanReason))
	}
	return tw.Flush()
}

// terminalSafe returns s as is if it is valid UTF-8 and every rune is
// printable, else quoted with Go escapes. Ban reasons come from other nodes'
// misbehaviour and from any local API caller: raw, they could move the
// cursor, recolour or rewrite the terminal, or forge table rows with a
// newline or tab. Invalid UTF-8 counts because a lone byte such as 0x9b is
// a control sequence introducer to some terminals.
func terminalSafe(s string) string {
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

func runBan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newNodeCommand("ban", "ban [--data DIR] [--for DURATION] [--reason TEXT] [--json] SUBJECT", stderr)
	dur := cmd.fs.Duration("for", 0, "ban duration (0: the node's default, 24h)")
	reason := cmd.fs.String("reason", "", "why, kept with the ban")
	asJSON := cmd.fs.Bool("json", false, "print the result as JSON")
	c, pos, err := cmd.open(args, 1, 1)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Ban(ctx, pos[0], *dur, *reason); err != nil {
		return err
	}
	if *asJSON {
		out := banOutput{Subject: pos[0], Banned: true, Reason: *reason}
		if *dur > 0 {
			out.For = dur.String()
		}
		return json.NewEncoder(stdout).Encode(out)
	}
	_, err = fmt.Fprintf(stdout, "banned %s\n", pos[0])
	return err
}

// banOutput is what `bitmesh ban --json` and `bitmesh unban --json` print.
type banOutput struct {
	Subject string `json:"subject"`
	Banned  bool   `json:"banned"`
	For     string `json:"for,omitempty"` // empty: the node's default
	Reason  string `json:"reason,omitempty"`
}

func runUnban(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newNodeCommand("unban", "unban [--data DIR] [--json] SUBJECT", stderr)
	asJSON := cmd.fs.Bool("json", false, "print the result as JSON")
	c, pos, err := cmd.open(args, 1, 1)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Unban(ctx, pos[0]); err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(banOutput{Subject: pos[0]})
	}
	_, err = fmt.Fprintf(stdout, "unbanned %s\n", pos[0])
	return err
}

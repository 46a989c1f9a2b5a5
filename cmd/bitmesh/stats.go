package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

func runStats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newNodeCommand("stats", "stats [--data DIR] [--json]", stderr)
	asJSON := cmd.fs.Bool("json", false, "print JSON")
	c, _, err := cmd.open(args, 0, 0)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.Stats(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(st)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "peers\t%d\n", st.Peers)
	fmt.Fprintf(tw, "topics\t%s\n", strings.Join(st.Topics, " "))
	fmt.Fprintf(tw, "validated\t%d\n", st.Validator.Validated)
	fmt.Fprintf(tw, "signature checks\t%d\n", st.Validator.SignatureChecks)
	fmt.Fprintf(tw, "cache hits\t%d\n", st.Validator.CacheHits)
	if len(st.Drops) == 0 {
		fmt.Fprintln(tw, "dropped\tnothing")
	}
	for _, reason := range slices.Sorted(maps.Keys(st.Drops)) {
		fmt.Fprintf(tw, "dropped: %s\t%d\n", reason, st.Drops[reason])
	}
	for _, p := range slices.Sorted(maps.Keys(st.StreamsRefused)) {
		fmt.Fprintf(tw, "streams refused: %s\t%d\n", p, st.StreamsRefused[p])
	}
	return tw.Flush()
}

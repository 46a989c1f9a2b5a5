package sim

import (
	"fmt"
	"strings"
)

// Summary renders a report as a Markdown table: what report.md holds and
// `bitmesh sim run` prints.
func Summary(r Report) string {
	var b strings.Builder
	row := func(k, format string, a ...any) { fmt.Fprintf(&b, "| %s | %s |\n", k, fmt.Sprintf(format, a...)) }
	if r.Partial {
		fmt.Fprintf(&b, "**Partial report**: the run was %s after %.1f virtual seconds.\n\n", r.Stopped, r.VirtualSeconds)
	}
	b.WriteString("| metric | value |\n| --- | --- |\n")
	row("honest nodes / links", "%d / %d", r.Nodes, r.Links)
	row("messages published", "%d", r.Messages)
	row("honest delivery", "%.4f %%", 100*r.HonestDeliveryRatio)
	row("latency p50 / p95 / p99 / max", "%.1f / %.1f / %.1f / %.1f ms", r.LatencyMS.P50, r.LatencyMS.P95, r.LatencyMS.P99, r.LatencyMS.Max)
	row("shortest path p50 / p99", "%.1f / %.1f ms", r.ShortestPathMS.P50, r.ShortestPathMS.P99)
	if r.ShortestPathMS.P99 > 0 {
		row("latency p99 / shortest-path p99", "%.3f", r.LatencyMS.P99/r.ShortestPathMS.P99)
	}
	row("bytes per node mean / p50 / max", "%.0f / %.0f / %.0f", r.BytesPerNode.Mean, r.BytesPerNode.P50, r.BytesPerNode.Max)
	row("duplicates per delivery", "%.2f", r.DuplicatesPerDeliv)
	row("attackers banned by all neighbours", "%d of %d", r.AttackersBanned, r.Attackers)
	if n := len(r.BanSeconds); n > 0 {
		row("time to ban (median / max)", "%.2f / %.2f s", r.BanSeconds[n/2], r.BanSeconds[n-1])
	}
	for _, series := range r.AttackerScores {
		low := series.Points[0]
		for _, pt := range series.Points {
			if pt.Mean < low.Mean {
				low = pt
			}
		}
		row(series.Type+": lowest mean GossipSub score", "%.1f at %d s (min %.1f over %d pairs)", low.Mean, low.Second, low.Min, low.Pairs)
	}
	if r.RedeliveredAfterRestart > 0 {
		row("messages a restarted node received again", "%d", r.RedeliveredAfterRestart)
	}
	if r.Redelivered > 0 {
		row("messages delivered twice (replays)", "%d", r.Redelivered)
	}
	for _, t := range r.Targets {
		row(fmt.Sprintf("target node %d: received / own delivered", t.Node), "%.4f %% / %.4f %% (received p99 %.1f ms)", 100*t.ReceivedRatio, 100*t.PublishedRatio, t.ReceivedMS.P99)
	}
	for _, l := range r.AttackerLinks {
		row(fmt.Sprintf("%s: neighbours that banned the attacker", l.Type), "%d of %d", l.Banned, l.Links)
	}
	if ro := r.Rollout; ro != nil {
		row("rollout: receivers complete / intact", "%d / %d of %d", ro.Complete, ro.Intact, ro.Receivers)
		row("rollout: seconds to complete p50 / p95 / max", "%.0f / %.0f / %.0f", ro.CompleteSeconds.P50, ro.CompleteSeconds.P95, ro.CompleteSeconds.Max)
		row("rollout: bytes moved / receivers × size", "%d / %d = %.4f", ro.BytesMoved, int64(ro.Receivers)*int64(ro.ObjectBytes), ro.BytesRatio)
		row("rollout: as GossipSub messages (measured cost per byte)", "%.0f bytes (%.2f × receivers × size)", ro.GossipSubEquivalent, ro.GossipSubBytesPerByte)
		row("rollout: bad chunks / stalls / tail stalls / announced IDs over budget", "%d / %d / %d / %d", ro.BadChunks, ro.Stalls, ro.TailStalls, ro.InvOverBudget)
	}
	row("virtual / wall time", "%.0f s / %.1f s", r.VirtualSeconds, r.WallSeconds)
	return b.String()
}

// Compare renders a virtual-time and a real-process run of one scenario
// side by side (Markdown).
func Compare(virtual, real Report) string {
	var b strings.Builder
	row := func(k string, v, r string) { fmt.Fprintf(&b, "| %s | %s | %s |\n", k, v, r) }
	f := func(format string, a ...any) string { return fmt.Sprintf(format, a...) }
	b.WriteString("| metric | virtual time (sim) | real processes |\n| --- | --- | --- |\n")
	row("nodes / links", f("%d / %d", virtual.Nodes, virtual.Links), f("%d / %d", real.Nodes, real.Links))
	row("messages", f("%d", virtual.Messages), f("%d", real.Messages))
	row("honest delivery", f("%.4f %%", 100*virtual.HonestDeliveryRatio), f("%.4f %%", 100*real.HonestDeliveryRatio))
	for _, p := range []struct {
		name string
		v, r float64
	}{
		{"latency p50", virtual.LatencyMS.P50, real.LatencyMS.P50},
		{"latency p95", virtual.LatencyMS.P95, real.LatencyMS.P95},
		{"latency p99", virtual.LatencyMS.P99, real.LatencyMS.P99},
		{"latency max", virtual.LatencyMS.Max, real.LatencyMS.Max},
	} {
		row(p.name, f("%.1f ms", p.v), f("%.1f ms", p.r))
	}
	row("shortest path p50 / p99", f("%.1f / %.1f ms", virtual.ShortestPathMS.P50, virtual.ShortestPathMS.P99), f("%.1f / %.1f ms", real.ShortestPathMS.P50, real.ShortestPathMS.P99))
	row("wall time", f("%.1f s", virtual.WallSeconds), f("%.1f s", real.WallSeconds))
	return b.String()
}

package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/internal/vtime"
)

// overheadScenario is the network and schedule both sides of
// BenchmarkPlainVsBitmesh run on: spam-flood's honest swarm (200 nodes,
// 20 publishers of 1 KiB a second for 20 s) without its attackers or
// proof of work, which plain GossipSub has no counterpart for.
const overheadScenario = `
name: overhead-200
seed: 3
nodes: 200
topology: {kind: random, degree: 8}
link: {latency_ms: 25, jitter_pct: 10}
traffic: {topic: sim, publishers: 20, messages: 20, interval: 1s, size: 1024, work_bits: 0}
warmup: 5s
drain: 5s
`

// overheadSideEnv names the side a child process of
// BenchmarkPlainVsBitmesh runs: "plain" or "bitmesh".
const overheadSideEnv = "BITMESH_SIM_OVERHEAD_SIDE"

// overheadResult is what a child reports on stdout.
type overheadResult struct {
	Delivery float64 `json:"delivery"`
	P99      float64 `json:"p99_ms"`
}

// overheadChild runs one side of the comparison in this process and
// prints its result; called from TestMain, it returns the exit code.
func overheadChild(side string) int {
	sc, err := ParseScenario([]byte(overheadScenario))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var opts []Option
	switch side {
	case "plain":
		opts = append(opts, plainGossipSub())
	case "bitmesh":
	default:
		fmt.Fprintf(os.Stderr, "%s: unknown side %q\n", overheadSideEnv, side)
		return 2
	}
	var rep Report
	var runErr error
	if err := vtime.WithT(func(t *testing.T) { rep, runErr = Run(t, sc, nil, opts...) }); err != nil || runErr != nil {
		fmt.Fprintln(os.Stderr, err, runErr)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(overheadResult{rep.HonestDeliveryRatio, rep.LatencyMS.P99}); err != nil {
		return 1
	}
	return 0
}

// overheadSide is one side's measurement.
type overheadSide struct {
	cpu, wall time.Duration
	rssKiB    int64
	overheadResult
}

// runOverheadSide runs one side in a child process (this test binary,
// with overheadSideEnv set) and measures it: CPU is the child's user +
// system time, RSS its peak resident set (getrusage).
func runOverheadSide(b *testing.B, side string) overheadSide {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), overheadSideEnv+"="+side)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s side: %v\n%s", side, err, stderr.Bytes())
	}
	out := overheadSide{wall: time.Since(start)}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	out.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	out.rssKiB = int64(ru.Maxrss) // KiB on Linux; int32 on 32-bit ARM
	if err := json.Unmarshal(stdout.Bytes(), &out.overheadResult); err != nil {
		b.Fatalf("%s side: %v in %q", side, err, stdout.Bytes())
	}
	if out.Delivery != 1 {
		b.Fatalf("%s side delivered %.6f, want 1: the comparison needs both to deliver everything", side, out.Delivery)
	}
	return out
}

// BenchmarkPlainVsBitmesh runs overheadScenario on the same simulated
// hosts, links and publish schedule twice per iteration, side by side:
// once with bitmesh nodes as the simulator runs them, once with plain
// go-libp2p-pubsub GossipSub peers with default options (libp2p message
// signing). Each side runs in a child process of its own; the metrics
// are bitmesh's CPU time, wall time and peak RSS as ratios of plain
// GossipSub's. A measurement, not a test: it asserts nothing about the
// figures, only that both sides deliver every message.
//
//	go test ./sim -run '^$' -bench PlainVsBitmesh -benchtime 3x
func BenchmarkPlainVsBitmesh(b *testing.B) {
	var plain, bitmesh overheadSide
	runs := 0
	for b.Loop() {
		// Alternate the order, so that neither side always runs on a
		// machine the other has just warmed or loaded.
		sides := []string{"plain", "bitmesh"}
		if runs%2 == 1 {
			sides[0], sides[1] = sides[1], sides[0]
		}
		for _, side := range sides {
			r := runOverheadSide(b, side)
			acc := &plain
			if side == "bitmesh" {
				acc = &bitmesh
			}
			acc.cpu += r.cpu
			acc.wall += r.wall
			acc.rssKiB = max(acc.rssKiB, r.rssKiB)
			acc.P99 = max(acc.P99, r.P99)
		}
		runs++
		b.Logf("plain: cpu %v wall %v rss %d MiB; bitmesh: cpu %v wall %v rss %d MiB (running totals, peak RSS)",
			plain.cpu.Round(time.Millisecond), plain.wall.Round(time.Millisecond), plain.rssKiB>>10,
			bitmesh.cpu.Round(time.Millisecond), bitmesh.wall.Round(time.Millisecond), bitmesh.rssKiB>>10)
	}
	b.ReportMetric(bitmesh.cpu.Seconds()/plain.cpu.Seconds(), "cpu-ratio")
	b.ReportMetric(bitmesh.wall.Seconds()/plain.wall.Seconds(), "wall-ratio")
	b.ReportMetric(float64(bitmesh.rssKiB)/float64(plain.rssKiB), "rss-ratio")
	b.ReportMetric(plain.cpu.Seconds()/float64(runs), "plain-cpu-s/op")
	b.ReportMetric(bitmesh.cpu.Seconds()/float64(runs), "bitmesh-cpu-s/op")
	b.ReportMetric(plain.P99, "plain-p99-ms")
	b.ReportMetric(bitmesh.P99, "bitmesh-p99-ms")
}

// TestPlainGossipSub: the baseline side of BenchmarkPlainVsBitmesh
// delivers every message on a small swarm, and Run refuses it for a
// scenario with adversaries, which only bitmesh nodes can score and ban.
func TestPlainGossipSub(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		wantErr    bool
	}{
		{"delivers", `
name: ci-plain
seed: 7
nodes: 16
topology: {kind: random, degree: 4}
link: {latency_ms: 25, jitter_pct: 10}
traffic: {publishers: 4, messages: 3, interval: 1s, size: 256}
warmup: 3s
drain: 3s
`, false},
		{"no adversaries", smallScenario, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := ParseScenario([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Run(t, sc, nil, plainGossipSub())
			if tc.wantErr {
				if !errors.Is(err, ErrScenario) {
					t.Fatalf("err = %v, want ErrScenario", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rep.Messages != 12 || rep.HonestDeliveryRatio != 1 {
				t.Fatalf("%d messages, delivery %.4f; want 12 and 1", rep.Messages, rep.HonestDeliveryRatio)
			}
		})
	}
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/node"
)

// BenchmarkNodeFootprint measures what one `bitmesh node` process costs
// in memory under steady traffic: the node (each profile in turn) with 20
// peers on loopback, a subscriber on its topic, and 60 s of 50 envelopes a
// second published by the peers. It reports the process's peak and final
// RSS (/proc) and its Go heap in use at the end (its own /metrics).
//
//	go test ./cmd/bitmesh -run '^$' -bench NodeFootprint -benchtime 1x
func BenchmarkNodeFootprint(b *testing.B) {
	bin := buildBitmesh(b)
	for _, profile := range []string{"default", "low-memory"} {
		b.Run(profile, func(b *testing.B) {
			for range b.N {
				peak, final, heap := footprint(b, bin, profile, 20, 50, time.Minute)
				b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
				b.ReportMetric(float64(final.total)/(1<<20), "final-RSS-MiB")
				b.ReportMetric(float64(final.anon)/(1<<20), "final-anon-MiB")
				b.ReportMetric(float64(final.file)/(1<<20), "final-file-MiB")
				b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
				b.ReportMetric(0, "ns/op")
			}
		})
	}
}

func footprint(b *testing.B, bin, profile string, peers, rate int, d time.Duration) (peakRSS int64, finalRSS rssSplit, heap int64) {
	const topic = "load"
	dir := b.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var procs []*exec.Cmd
	var nodes []*node.Node
	defer func() { // peers first, then SIGTERM to both processes, then reap them
		for _, n := range nodes {
			n.Close()
		}
		cancel()
		for _, p := range procs {
			p.Wait()
		}
	}()
	cmd := exec.CommandContext(ctx, bin, "node", "--data", dir, "--profile", profile, "--no-mdns", "--no-nat", "--log-level", "warn",
		"--listen", "/ip4/127.0.0.1/tcp/0", "--metrics", "127.0.0.1:0")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Stderr = io.Discard
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	procs = append(procs, cmd)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	var ready readyEvent
	if err != nil || json.Unmarshal([]byte(line), &ready) != nil {
		b.Fatalf("node not ready: %q, %v", line, err)
	}
	sub := exec.CommandContext(ctx, bin, "sub", "--data", dir, topic)
	sub.Stdout, sub.Stderr = io.Discard, io.Discard
	if err := sub.Start(); err != nil {
		b.Fatal(err)
	}
	procs = append(procs, sub)

	for range peers {
		cfg := node.LocalConfig()
		cfg.BootstrapPeers = ready.Addrs
		n, err := node.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := n.Start(ctx); err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	payload := make([]byte, 256)
	for i, end := 0, time.Now().Add(d); time.Now().Before(end); i++ {
		<-tick.C
		if _, err := nodes[i%peers].Publish(ctx, topic, payload); err != nil {
			b.Logf("publish: %v", err)
		}
		if i%rate == 0 {
			peakRSS = max(peakRSS, rss(b, cmd.Process.Pid).total)
		}
	}
	finalRSS = rss(b, cmd.Process.Pid)
	return max(peakRSS, finalRSS.total), finalRSS, scrapeGauge(b, ready.Metrics, "go_memstats_heap_inuse_bytes")
}

// rssSplit is a process's resident set: in all, anonymous (heap, stacks,
// runtime) and file-backed (mostly the binary's pages), in bytes.
type rssSplit struct{ total, anon, file int64 }

// rss reads a process's resident set size from /proc.
func rss(b *testing.B, pid int) rssSplit {
	f, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	var r rssSplit
	fields := map[string]*int64{"VmRSS:": &r.total, "RssAnon:": &r.anon, "RssFile:": &r.file}
	for line := range strings.Lines(string(f)) {
		for name, dst := range fields {
			if v, ok := strings.CutPrefix(line, name); ok {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if err != nil {
					b.Fatal(err)
				}
				*dst = kb << 10
			}
		}
	}
	if r.total == 0 {
		b.Fatal("no VmRSS")
	}
	return r
}

// scrapeGauge reads one unlabelled value from a /metrics page.
func scrapeGauge(b *testing.B, addr, name string) int64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			return int64(f)
		}
	}
	b.Fatalf("no %s in /metrics", name)
	return 0
}

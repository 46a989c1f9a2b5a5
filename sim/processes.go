package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"net"

	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/node/control"
)

// MaxProcessNodes bounds RunProcesses: one OS process per node.
const MaxProcessNodes = 100

// RunProcesses runs sc with real `bitmesh node` processes (binary bin) on
// loopback, in real time, for the cross-check against Run: the same seed
// gives the same topology and link latencies, each link is a user-space
// delay proxy, and the same recorder computes the same Report. Adversaries,
// partitions, churn, link bandwidth and loss are not supported. dir receives the nodes' data
// directories and logs. When ctx ends first, RunProcesses stops the nodes
// and returns the report so far, marked Partial, with an error wrapping
// context.Cause(ctx).
func RunProcesses(ctx context.Context, sc Scenario, bin, dir string, progress io.Writer) (Report, error) {
	switch {
	case sc.Nodes > MaxProcessNodes:
		return Report{}, fmt.Errorf("%w: %d nodes for real processes, at most %d", ErrScenario, sc.Nodes, MaxProcessNodes)
	case len(sc.Adversaries) > 0 || len(sc.Partitions) > 0 || sc.Churn != nil || sc.Link.BandwidthMbps > 0 || sc.Link.LossPct > 0:
		return Report{}, fmt.Errorf("%w: real-process runs take no adversaries, partitions, churn, bandwidth or loss", ErrScenario)
	}
	wall := time.Now()
	g := newGraph(stream(sc, streamGraph), sc)
	rec := newRecorder(sc, wall)
	rec.graph = g
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Keys first: a node's bootstrap addresses name its peers' IDs.
	type proc struct {
		dir  string
		ip   net.IP // 127.0.0.(i+2): a loopback address of its own
		port int
		id   identity.DeviceID
		peer string
		cmd  *exec.Cmd
		api  *control.Client
	}
	procs := make([]*proc, sc.Nodes)
	for i := range procs {
		d := filepath.Join(dir, fmt.Sprintf("node%03d", i))
		if err := os.MkdirAll(d, 0o700); err != nil {
			return Report{}, err
		}
		key, _, err := identity.LoadOrCreate(identity.KeyPath(d), nil)
		if err != nil {
			return Report{}, err
		}
		pid, err := key.DeviceID().PeerID()
		if err != nil {
			return Report{}, err
		}
		ip := net.IPv4(127, 0, byte((i+2)>>8), byte(i+2))
		port, err := freeTCPPort(ip)
		if err != nil {
			return Report{}, err
		}
		procs[i] = &proc{dir: d, ip: ip, port: port, id: key.DeviceID(), peer: pid.String()}
	}
	var proxies []*delayProxy
	defer func() {
		for _, p := range proxies {
			p.Close()
		}
	}()
	bootstrap := make([][]string, sc.Nodes)
	// The later-started node of each link dials the earlier one, which is
	// then already listening (nodes start in index order).
	for _, e := range g.edges {
		from, to := max(e.a, e.b), min(e.a, e.b)
		a, b := procs[from], procs[to]
		p, err := newDelayProxy(b.ip, a.ip, fmt.Sprintf("%s:%d", b.ip, b.port), e.latency)
		if err != nil {
			return Report{}, err
		}
		proxies = append(proxies, p)
		bootstrap[from] = append(bootstrap[from], fmt.Sprintf("/ip4/%s/tcp/%d/p2p/%s", b.ip, p.Addr().Port, b.peer))
	}

	var procWG sync.WaitGroup
	defer func() {
		for _, p := range procs {
			if p.cmd != nil && p.cmd.Process != nil {
				p.cmd.Process.Signal(syscall.SIGTERM)
			}
		}
		procWG.Wait()
		for _, p := range procs {
			if p.api != nil {
				p.api.Close()
			}
		}
	}()
	for i, p := range procs {
		args := []string{"node", "--data", p.dir, "--no-mdns", "--no-nat", "--log-level", "warn",
			"--listen", fmt.Sprintf("/ip4/%s/tcp/%d", p.ip, p.port), "--api", "127.0.0.1:0"}
		for _, b := range bootstrap[i] {
			args = append(args, "--bootstrap", b)
		}
		p.cmd = exec.Command(bin, args...)
		logf, err := os.Create(filepath.Join(p.dir, "node.log"))
		if err != nil {
			return Report{}, err
		}
		p.cmd.Stderr = logf
		stdout, err := p.cmd.StdoutPipe()
		if err != nil {
			return Report{}, err
		}
		if err := p.cmd.Start(); err != nil {
			return Report{}, err
		}
		procWG.Add(1)
		go func() { defer procWG.Done(); p.cmd.Wait(); logf.Close() }()
		var ready struct {
			API string `json:"api"`
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || json.Unmarshal([]byte(line), &ready) != nil {
			return Report{}, fmt.Errorf("sim: node %d did not start (see %s/node.log): %v", i, p.dir, err)
		}
		e, err := control.ReadEndpoint(p.dir)
		if err != nil {
			return Report{}, err
		}
		p.api = control.NewClient(e)
	}

	// Every node subscribes; first deliveries are timed on arrival.
	var subWG sync.WaitGroup
	subscribed := make(chan struct{}, sc.Nodes)
	for i, p := range procs {
		subWG.Add(1)
		go func() {
			defer subWG.Done()
			_ = p.api.Subscribe(ctx, sc.Traffic.Topic, func() { subscribed <- struct{}{} }, func(m control.Message) error {
				if m.From == p.id.String() || m.Data == nil {
					return nil
				}
				if f := strings.Fields(*m.Data); len(f) > 0 && strings.HasPrefix(f[0], "m") {
					if msg, err := strconv.ParseUint(f[0][1:], 10, 64); err == nil {
						rec.deliver(i, msg, time.Now())
					}
				}
				return nil
			})
		}()
	}
	defer subWG.Wait()
	defer cancel() // runs before subWG.Wait: ends the subscriptions
	for range sc.Nodes {
		select {
		case <-subscribed:
		case <-time.After(30 * time.Second):
			return Report{}, errors.New("sim: nodes did not all subscribe within 30 s")
		case <-ctx.Done():
			return Report{Scenario: sc.Name, Nodes: sc.Nodes, Partial: true, Stopped: StoppedInterrupted},
				fmt.Errorf("sim: %s stopped while its nodes started: %w", sc.Name, context.Cause(ctx))
		}
	}

	start := time.Now()
	waitPublishers := startPublishers(ctx, sc, start, rec, func(p int, msg uint64) error {
		text := fmt.Sprintf("m%d ", msg)
		payload := text + strings.Repeat(".", max(0, sc.Traffic.Size-len(text)))
		_, err := procs[p].api.Publish(ctx, sc.Traffic.Topic, []byte(payload), 0)
		return err
	})
	end := start.Add(sc.Warmup.Duration + time.Duration(sc.Traffic.Messages)*sc.Traffic.Interval.Duration + sc.Drain.Duration)
	stopped := false
	for now := time.Now(); now.Before(end) && !stopped; now = time.Now() {
		select {
		case <-time.After(min(time.Second, end.Sub(now))):
		case <-ctx.Done():
			stopped = true
		}
		if progress != nil {
			fmt.Fprintf(progress, "\rprocesses %s: %5.0fs of %.0fs, delivered %d of %d", sc.Name, time.Since(start).Seconds(), end.Sub(start).Seconds(), rec.deliveries(), rec.expected())
		}
	}
	if progress != nil {
		fmt.Fprintln(progress)
	}
	if err := waitPublishers(); err != nil {
		return Report{}, err
	}
	rep := rec.report(nil, time.Since(start))
	rep.WallSeconds = time.Since(wall).Seconds()
	if stopped {
		rep.Partial, rep.Stopped = true, StoppedInterrupted
		return rep, fmt.Errorf("sim: %s stopped after %.1f seconds: %w", sc.Name, rep.VirtualSeconds, context.Cause(ctx))
	}
	return rep, nil
}

// freeTCPPort asks the kernel for a free loopback port. Another process
// could take it before the node listens; the node then fails to start and
// the run reports it.
func freeTCPPort(ip net.IP) (int, error) {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip})
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchRoleEnv names the role a re-executed test binary plays for
// BenchmarkTwoProcesses: "pub" or "sub". TestMain runs the role instead
// of the tests.
const benchRoleEnv = "BITMESH_BENCH_ROLE"

// roleReport is what a role process prints, one JSON object per line.
type roleReport struct {
	Addrs     []string `json:"addrs,omitempty"`     // sub: where to dial it
	Sign      float64  `json:"sign,omitempty"`      // pub: Seal calls per second on its core
	Verify    float64  `json:"verify,omitempty"`    // sub: validations per second on its core
	After     float64  `json:"after,omitempty"`     // the same, measured again after the run
	Published int64    `json:"published,omitempty"` // pub: Publish calls that returned nil
	Refused   int64    `json:"refused,omitempty"`   // pub: Publish calls that returned an error
	Start     int64    `json:"start,omitempty"`     // pub: unix nanos of the first Publish
	Delivered int64    `json:"delivered,omitempty"` // sub: deliveries
	Last      int64    `json:"last,omitempty"`      // sub: unix nanos of the latest delivery
	Drops     uint64   `json:"drops,omitempty"`     // counted by the node, all reasons
}

// BenchmarkTwoProcesses is BenchmarkTwoNodes with each node in its own
// process pinned to its own core (taskset, GOMAXPROCS=1), so that each
// node's bound is its own: the publisher's signing rate on core 0 and the
// subscriber's validation rate on core 1, each measured in its process
// for a second just before the run and again just after it, the bound
// being the mean of the two: a shared virtual machine's speed drifts by
// ±15 % from one minute to the next, and a bound measured once, before,
// credits or charges the run with that drift. Needs taskset and two
// cores.
// BITMESH_BENCH_CPUPROFILE_SUB=FILE (or _PUB) writes that role's CPU
// profile.
//
// Metrics: e2e-msg/s, sign-msg/s, verify-msg/s, ratio (e2e over the lower
// of the two), lost (published without error but never delivered),
// refused (Publish errors) and drops (counted by the nodes).
//
//	go test ./node -run '^$' -bench TwoProcesses -benchtime 20000x
func BenchmarkTwoProcesses(b *testing.B) {
	if runtime.NumCPU() < 2 {
		b.Fatalf("needs two cores, have %d", runtime.NumCPU())
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		b.Fatalf("needs taskset (Debian util-linux): %v", err)
	}
	sub := startRole(b, taskset, "1", "sub", nil)
	subHello := sub.read(b)
	pub := startRole(b, taskset, "0", "pub", []string{
		"BITMESH_BENCH_PEERS=" + strings.Join(subHello.Addrs, ","),
		"BITMESH_BENCH_N=" + strconv.Itoa(b.N),
	})
	b.ResetTimer()
	pubDone := pub.read(b)
	fmt.Fprintln(sub.stdin, pubDone.Published) // how many to wait for
	subDone := sub.read(b)
	b.StopTimer()
	fmt.Fprintln(pub.stdin, "measure") // now that nothing is in flight
	pubDone.After = pub.read(b).After
	pub.stop(b)
	sub.stop(b)

	// The warm-up message is in both counts, and before the start.
	e2e := float64(subDone.Delivered-1) / time.Unix(0, subDone.Last).Sub(time.Unix(0, pubDone.Start)).Seconds()
	sign, verify := (pub.hello.Sign+pubDone.After)/2, (subHello.Verify+subDone.After)/2
	b.ReportMetric(e2e, "e2e-msg/s")
	b.ReportMetric(sign, "sign-msg/s")
	b.ReportMetric(verify, "verify-msg/s")
	b.ReportMetric(e2e/min(sign, verify), "ratio")
	b.ReportMetric(float64(pubDone.Published-subDone.Delivered), "lost")
	b.ReportMetric(float64(pubDone.Refused), "refused")
	b.ReportMetric(float64(pubDone.Drops+subDone.Drops), "drops")
	b.ReportMetric(0, "ns/op")
}

// roleProc is a running role process.
type roleProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
	hello roleReport // pub: its first report, read by startRole
}

func startRole(b *testing.B, taskset, cpu, role string, env []string) *roleProc {
	b.Helper()
	cmd := exec.Command(taskset, "-c", cpu, os.Args[0])
	cmd.Env = append(os.Environ(), append(env, benchRoleEnv+"="+role, "GOMAXPROCS=1")...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p := &roleProc{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if role == "pub" {
		p.hello = p.read(b)
	}
	return p
}

func (p *roleProc) read(b *testing.B) roleReport {
	b.Helper()
	if !p.out.Scan() {
		b.Fatalf("%s: no report: %v", p.cmd.Args, p.out.Err())
	}
	var r roleReport
	if err := json.Unmarshal(p.out.Bytes(), &r); err != nil {
		b.Fatalf("%s: %q: %v", p.cmd.Args, p.out.Text(), err)
	}
	return r
}

// stop closes the role's standard input, which ends it, and waits.
func (p *roleProc) stop(b *testing.B) {
	b.Helper()
	p.stdin.Close()
	if err := p.cmd.Wait(); err != nil {
		b.Fatalf("%s: %v", p.cmd.Args, err)
	}
}

// runBenchRole runs role in this process and returns its exit code.
func runBenchRole(role string) int {
	if path := os.Getenv("BITMESH_BENCH_CPUPROFILE_" + strings.ToUpper(role)); path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench role %s: %v\n", role, err)
			return 1
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	var err error
	switch role {
	case "pub":
		err = publisherRole()
	case "sub":
		err = subscriberRole()
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench role %s: %v\n", role, err)
		return 1
	}
	return 0
}

func emit(r roleReport) error { return json.NewEncoder(os.Stdout).Encode(r) }

func sumDrops(n *Node) uint64 {
	var sum uint64
	for _, c := range n.Drops() {
		sum += c
	}
	return sum
}

func benchNodeConfig() Config {
	cfg := LocalConfig()
	cfg.Rate.PerSender, cfg.Rate.PerPeer = 0, 0
	return cfg
}

// subscriberRole measures its validation rate, starts a node, prints its
// addresses, counts deliveries on "bench" until it has the number read
// from standard input or 3 s pass without one, prints the count, and
// exits when standard input closes.
func subscriberRole() error {
	payload := make([]byte, 256)
	_, verify, err := pipelineBounds(1, payload)
	if err != nil {
		return err
	}
	n, err := New(benchNodeConfig())
	if err != nil {
		return err
	}
	defer n.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := n.Start(ctx); err != nil {
		return err
	}
	s, err := n.Subscribe("bench", WithBuffer(1<<20))
	if err != nil {
		return err
	}
	defer s.Cancel()
	var delivered, last atomic.Int64
	go func() {
		for {
			if _, err := s.Next(ctx); err != nil {
				return
			}
			delivered.Add(1)
			last.Store(time.Now().UnixNano())
		}
	}()
	var addrs []string
	for _, a := range n.Addrs() {
		addrs = append(addrs, a.String())
	}
	if err := emit(roleReport{Addrs: addrs, Verify: verify}); err != nil {
		return err
	}
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() {
		return errors.New("no expected count on standard input")
	}
	want, err := strconv.ParseInt(strings.TrimSpace(in.Text()), 10, 64)
	if err != nil {
		return err
	}
	for delivered.Load() < want {
		before := delivered.Load()
		time.Sleep(3 * time.Second)
		if delivered.Load() == before {
			break
		}
	}
	drops := sumDrops(n)
	_, after, err := pipelineBounds(1, payload)
	if err != nil {
		return err
	}
	if err := emit(roleReport{Delivered: delivered.Load(), Last: last.Load(), Drops: drops, After: after}); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}

// publisherRole measures its signing rate, starts a node that dials the
// subscriber, publishes BITMESH_BENCH_N envelopes from four goroutines
// as fast as Publish returns, prints the counts, measures its signing
// rate again when told on standard input (once the subscriber has all),
// and exits when standard input closes.
func publisherRole() error {
	payload := make([]byte, 256)
	sign, _, err := pipelineBounds(1, payload)
	if err != nil {
		return err
	}
	if err := emit(roleReport{Sign: sign}); err != nil {
		return err
	}
	total, err := strconv.Atoi(os.Getenv("BITMESH_BENCH_N"))
	if err != nil {
		return fmt.Errorf("BITMESH_BENCH_N: %w", err)
	}
	cfg := benchNodeConfig()
	cfg.BootstrapPeers = strings.Split(os.Getenv("BITMESH_BENCH_PEERS"), ",")
	n, err := New(cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		return err
	}
	// One message the subscriber counts too: the mesh is formed when it
	// is accepted.
	if _, err := n.Publish(ctx, "bench", payload, WithMinPeers(1)); err != nil {
		return err
	}
	const workers = 4
	var published, refused atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < total; i += workers {
				if _, err := n.Publish(ctx, "bench", payload); err != nil {
					refused.Add(1)
					continue
				}
				published.Add(1)
			}
		})
	}
	wg.Wait()
	if err := emit(roleReport{Published: published.Load() + 1, Refused: refused.Load(), Start: start.UnixNano(), Drops: sumDrops(n)}); err != nil {
		return err
	}
	if in := bufio.NewScanner(os.Stdin); !in.Scan() {
		return errors.New("standard input closed before the second measurement")
	}
	after, _, err := pipelineBounds(1, payload)
	if err != nil {
		return err
	}
	if err := emit(roleReport{After: after}); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}

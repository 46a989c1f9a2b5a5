package mqtt

import (
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"

	"github.com/bitmesh/bitmesh/internal/testwait"
)

var (
	benchClients   = flag.Int("mqtt-bench-clients", 100, "publishing MQTT clients in BenchmarkGatewayThroughput")
	benchPerClient = flag.Int("mqtt-bench-per-client", 500, "QoS 1 messages each client publishes in BenchmarkGatewayThroughput")
	benchWindow    = flag.Int("mqtt-bench-window", 20, "QoS 1 messages each client keeps in flight")
	benchExtPub    = flag.String("mqtt-bench-pub", "", "BenchmarkGatewayExternal: MQTT address of gateway A (a `bitmesh node --mqtt` process)")
	benchExtSub    = flag.String("mqtt-bench-sub", "", "BenchmarkGatewayExternal: MQTT address of gateway B")
)

// BenchmarkGatewayExternal drives two running gateway processes, so that
// each one's memory can be read from /proc apart from the load generator:
//
//	go test -run '^$' -bench BenchmarkGatewayExternal -benchtime 1x ./mqtt/ \
//	    -mqtt-bench-pub 127.0.0.1:PA -mqtt-bench-sub 127.0.0.1:PB
func BenchmarkGatewayExternal(b *testing.B) {
	if *benchExtPub == "" || *benchExtSub == "" {
		b.Fatal("needs -mqtt-bench-pub and -mqtt-bench-sub: the MQTT addresses of two bitmesh node --mqtt processes")
	}
	for b.Loop() {
		r := runScenario(b, *benchExtPub, *benchExtSub, *benchClients, *benchPerClient, *benchWindow, true)
		if r.delivered != *benchClients**benchPerClient {
			b.Fatalf("%d of %d delivered", r.delivered, *benchClients**benchPerClient)
		}
		b.ReportMetric(r.rate(), "e2e_msgs/s")
		b.ReportMetric(float64(r.pct(0.5).Microseconds())/1000, "p50_ms")
		b.ReportMetric(float64(r.pct(0.99).Microseconds())/1000, "p99_ms")
	}
}

// scenario publishes perClient QoS 1 messages from each of clients MQTT
// clients to pubAddr while one subscriber on subAddr receives them; it
// returns the time from the first publish to the last delivery, the
// end-to-end latencies and how many arrived. Each payload carries its send
// time.
type scenarioResult struct {
	elapsed   time.Duration
	latencies []time.Duration
	delivered int
}

func runScenario(tb testing.TB, pubAddr, subAddr string, clients, perClient, window int, wrapped bool) scenarioResult {
	tb.Helper()
	total := clients * perClient
	var mu sync.Mutex
	lat := make([]time.Duration, 0, total)
	var got atomic.Int64
	done := make(chan struct{})
	var last atomic.Int64
	sub := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + subAddr).SetClientID("bench-sub").SetOrderMatters(false))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("subscriber connect: %v", tok.Error())
	}
	defer sub.Disconnect(0)
	onMsg := func(_ paho.Client, m paho.Message) {
		p := m.Payload()
		if wrapped {
			d, err := DecodeWrapper(p)
			if err != nil {
				return
			}
			p = d.Payload
		}
		if len(p) < 8 {
			return
		}
		now := time.Now()
		sent := time.Unix(0, int64(binary.BigEndian.Uint64(p)))
		mu.Lock()
		lat = append(lat, now.Sub(sent))
		mu.Unlock()
		last.Store(now.UnixNano())
		if got.Add(1) == int64(total) {
			close(done)
		}
	}
	if tok := sub.Subscribe("bench/t", 0, onMsg); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("subscribe: %v", tok.Error())
	}
	time.Sleep(500 * time.Millisecond) // the gateway joins the mesh topic for it
	if tok := sub.Subscribe("bench/t", 0, onMsg); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("subscribe: %v", tok.Error())
	}
	pubs := make([]paho.Client, clients)
	for i := range pubs {
		pubs[i] = paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + pubAddr).SetClientID(fmt.Sprintf("bench-pub-%d", i)).
			SetCleanSession(true).SetOrderMatters(false).SetWriteTimeout(30 * time.Second))
		if tok := pubs[i].Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			tb.Fatalf("publisher connect: %v", tok.Error())
		}
	}
	defer func() {
		for _, p := range pubs {
			p.Disconnect(0)
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	for i, p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inflight := make(chan paho.Token, window)
			payload := make([]byte, 32)
			copy(payload[8:], fmt.Sprintf("client-%d", i))
			for range perClient {
				if len(inflight) == window {
					(<-inflight).WaitTimeout(time.Minute)
				}
				b := slices.Clone(payload)
				binary.BigEndian.PutUint64(b, uint64(time.Now().UnixNano()))
				inflight <- p.Publish("bench/t", 1, false, b)
			}
			for len(inflight) > 0 {
				(<-inflight).WaitTimeout(time.Minute)
			}
		}()
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
	}
	r := scenarioResult{delivered: int(got.Load())}
	if l := last.Load(); l > 0 {
		r.elapsed = time.Unix(0, l).Sub(start)
	}
	mu.Lock()
	r.latencies = slices.Clone(lat)
	mu.Unlock()
	slices.Sort(r.latencies)
	return r
}

func (r scenarioResult) rate() float64 { return float64(r.delivered) / r.elapsed.Seconds() }

func (r scenarioResult) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[min(len(r.latencies)-1, int(p*float64(len(r.latencies))))]
}

// startMochiAlone runs a bare mochi broker, no gateway: the baseline.
func startMochiAlone(tb testing.TB) (string, func()) {
	tb.Helper()
	srv := mochi.New(&mochi.Options{Logger: nil})
	_ = srv.AddHook(new(allowAll), nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "t", Address: addr})); err != nil {
		tb.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		tb.Fatal(err)
	}
	return addr, func() { srv.Close() }
}

// allowAll lets every client in, as mochi's own AllowHook does.
type allowAll struct{ mochi.HookBase }

func (h *allowAll) ID() string { return "allow-all" }
func (h *allowAll) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}
func (h *allowAll) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }
func (h *allowAll) OnACLCheck(*mochi.Client, string, bool) bool              { return true }

// verifyTime is one BIP-340 verification of an envelope, measured now.
func verifyTime(tb testing.TB) time.Duration {
	key, err := identity.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	env := &gossip.Envelope{Network: gossip.NetworkFromName("bench"), Time: time.Now(), Topic: "bench/t", Payload: []byte("x")}
	raw, id, err := env.Seal(key)
	if err != nil {
		tb.Fatal(err)
	}
	var sig identity.Signature
	copy(sig[:], raw[len(raw)-len(sig):])
	const n = 500
	start := time.Now()
	for range n {
		if err := identity.VerifyBIP340(key.DeviceID(), id, sig); err != nil {
			tb.Fatal(err)
		}
	}
	return time.Since(start) / n
}

// BenchmarkGatewayThroughput: MQTT messages a second from many QoS 1
// clients through gateway A, across the mesh, to a subscriber on gateway
// B, every message in A's Merkle log, against in the same run (a) mochi
// alone, broker to subscriber, and (b) the node's validate bound, one
// signature verification per envelope. Run it as
//
//	go test -run '^$' -bench BenchmarkGatewayThroughput -benchtime 1x ./mqtt/
func BenchmarkGatewayThroughput(b *testing.B) {
	requireMosquitto(b) // not used here, but the package's tests need it: say so once
	for b.Loop() {
		gwA, gwB := startBenchGateways(b)
		e2e := runScenario(b, gwA.gw.Addr(), gwB.gw.Addr(), *benchClients, *benchPerClient, *benchWindow, true)
		mochiAddr, stop := startMochiAlone(b)
		alone := runScenario(b, mochiAddr, mochiAddr, *benchClients, *benchPerClient, *benchWindow, false)
		stop()
		vt := verifyTime(b)
		sA := gwA.gw.Stats()
		perBatch := float64(sA[countBatchedMsgs]) / max(1, float64(sA[countBatches]))
		total := *benchClients * *benchPerClient
		if e2e.delivered != total {
			b.Fatalf("gateway path delivered %d of %d (A %v; B %v)", e2e.delivered, total, sA, gwB.gw.Stats())
		}
		logged := uint64(0)
		for _, l := range gwA.logs.Logs() {
			logged += l.Size
		}
		b.ReportMetric(e2e.rate(), "e2e_msgs/s")
		b.ReportMetric(alone.rate(), "mochi_msgs/s")
		b.ReportMetric(1/vt.Seconds(), "verify_envs/s")
		b.ReportMetric(perBatch/vt.Seconds(), "verify_bound_msgs/s")
		b.ReportMetric(e2e.rate()/alone.rate(), "e2e/mochi")
		b.ReportMetric(e2e.rate()*vt.Seconds(), "e2e/one_verify_per_msg")
		b.ReportMetric(perBatch, "msgs/envelope")
		b.ReportMetric(float64(e2e.pct(0.5).Microseconds())/1000, "p50_ms")
		b.ReportMetric(float64(e2e.pct(0.99).Microseconds())/1000, "p99_ms")
		b.ReportMetric(float64(alone.pct(0.5).Microseconds())/1000, "mochi_p50_ms")
		b.ReportMetric(float64(alone.pct(0.99).Microseconds())/1000, "mochi_p99_ms")
		b.ReportMetric(float64(rssKiB())/1024, "proc_rss_MB")
		b.Logf("gateway path: %d msgs in %v (%d envelopes, %.0f msgs each, %d log entries); mochi alone: %d in %v; verify %v",
			e2e.delivered, e2e.elapsed, sA[countBatches], perBatch, logged, alone.delivered, alone.elapsed, vt)
	}
}

// BenchmarkGatewayBurst: 1,000 clients publish 100 QoS 1 messages each at
// once, 100,000 in all, through gateway A to a subscriber on gateway B;
// every one must arrive.
//
//	go test -run '^$' -bench BenchmarkGatewayBurst -benchtime 1x ./mqtt/
func BenchmarkGatewayBurst(b *testing.B) {
	for b.Loop() {
		gwA, gwB := startBenchGateways(b)
		r := runScenario(b, gwA.gw.Addr(), gwB.gw.Addr(), 1000, 100, 10, true)
		if r.delivered != 100_000 {
			b.Fatalf("burst: %d of 100000 delivered (A %v; B %v)", r.delivered, gwA.gw.Stats(), gwB.gw.Stats())
		}
		b.ReportMetric(r.rate(), "msgs/s")
		b.ReportMetric(r.elapsed.Seconds(), "burst_s")
		b.ReportMetric(float64(r.pct(0.5).Microseconds())/1000, "p50_ms")
		b.ReportMetric(float64(r.pct(0.99).Microseconds())/1000, "p99_ms")
		b.ReportMetric(float64(rssKiB())/1024, "proc_rss_MB")
	}
}

// startBenchGateways starts gateway A, which logs bench/t, and gateway B
// connected to it, and waits until B's subscription can reach A.
func startBenchGateways(b *testing.B) (testGateway, testGateway) {
	b.Helper()
	cfgA, cfgB := DefaultConfig(), DefaultConfig()
	cfgA.Listen, cfgB.Listen = "127.0.0.1:0", "127.0.0.1:0"
	a := startGateway(b, cfgA, b.TempDir(), []string{"bench/t"})
	bb := startGateway(b, cfgB, "", nil, a.n)
	if err := bb.gw.subscribeMesh("bench/t"); err != nil {
		b.Fatal(err)
	}
	testwait.For(b, 15*time.Second, 20*time.Millisecond, func() error {
		if len(a.n.TopicPeers("bench/t")) == 0 {
			return fmt.Errorf("A sees no peer on bench/t")
		}
		return nil
	})
	return a, bb
}

// rssKiB is this process's peak resident set (VmHWM), in KiB.
func rssKiB() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			return n
		}
	}
	return 0
}

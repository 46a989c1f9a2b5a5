package sim

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/lightning"
	"github.com/bitmesh/bitmesh/node"
)

// Option tunes a Run.
type Option func(*runOptions)

type runOptions struct {
	atEnd func()
	ctx   context.Context
	plain bool
}

// plainGossipSub runs every honest node as a plain go-libp2p-pubsub
// GossipSub peer with pubsub's default options (libp2p message signing)
// instead of a bitmesh node, on the same simulated hosts, links and
// publish schedule: the baseline BenchmarkPlainVsBitmesh compares bitmesh
// against. Run refuses it for scenarios with adversaries, whose bans and
// scores only bitmesh nodes have.
func plainGossipSub() Option { return func(o *runOptions) { o.plain = true } }

// AtEnd calls f when the run's virtual time is over, before any node
// closes: the moment to take a heap profile of the whole swarm.
func AtEnd(f func()) Option { return func(o *runOptions) { o.atEnd = f } }

// WithContext stops the run early when ctx is done: within a tenth of a
// virtual second once the swarm runs (or before the next node starts
// while it is set up). Run then returns the report of what ran so far,
// marked Partial, and an error wrapping context.Cause(ctx).
func WithContext(ctx context.Context) Option { return func(o *runOptions) { o.ctx = ctx } }

// StoppedInterrupted is Report.Stopped for a run WithContext's context
// stopped.
const StoppedInterrupted = "interrupted"

// pollStop is how often, in virtual time, a run checks whether it must
// stop.
const pollStop = 100 * time.Millisecond

// Run runs sc in virtual time: t's test gets a synctest bubble in which
// every node, link and adversary runs, and time advances only when all of
// them wait. progress, if not nil, gets a line per virtual second.
func Run(t *testing.T, sc Scenario, progress io.Writer, opts ...Option) (Report, error) {
	t.Helper()
	if err := sc.Validate(); err != nil {
		return Report{}, err
	}
	var o runOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.plain && len(sc.Adversaries) > 0 {
		return Report{}, fmt.Errorf("%w: plain GossipSub peers run no adversaries", ErrScenario)
	}
	// The bubble watches a flag rather than o.ctx: a goroutine in a
	// synctest bubble waiting on a channel from outside it is not durably
	// blocked, so virtual time would stop; and a context's Done channel
	// first made inside the bubble would belong to it.
	var stop atomic.Bool
	if o.ctx != nil {
		defer context.AfterFunc(o.ctx, func() { stop.Store(true) })()
	}
	var rep Report
	var err error
	wall := time.Now()
	synctest.Test(t, func(*testing.T) { rep, err = run(sc, progress, o, &stop) })
	rep.WallSeconds = time.Since(wall).Seconds()
	if err == nil && rep.Partial {
		err = fmt.Errorf("sim: %s stopped after %.1f virtual seconds: %w", sc.Name, rep.VirtualSeconds, context.Cause(o.ctx))
	}
	return rep, err
}

// honest is one simulated bitmesh node; under plainGossipSub, plain
// holds a plain GossipSub peer instead and n is nil.
type honest struct {
	n       *node.Node
	plain   *plainPeer
	id      peer.ID
	traffic *traffic
	dataDir string               // empty but for nodes that restart
	pay     *lightning.Lightning // with payments
}

// drainAfterClose is the virtual time run waits after closing the swarm.
const drainAfterClose = time.Second

// run is the whole simulation; it must be called inside a synctest bubble.
// When stop is set it winds the swarm down early and returns a partial
// report.
func run(sc Scenario, progress io.Writer, o runOptions, stop *atomic.Bool) (Report, error) {
	start := time.Now()
	// stoppedEarly is the report of a run stopped while it was set up.
	stoppedEarly := Report{Scenario: sc.Name, Nodes: sc.Nodes, Partial: true, Stopped: StoppedInterrupted}
	rng := rand.New(rand.NewPCG(sc.Seed, sc.Seed^0x5851f42d4c957f2d))
	// After everything is closed, let virtual time run on a little: a
	// libp2p exchange still in flight on a mocknet stream (identify on a
	// connection made as the run ended) waits on the stream's delivery
	// timer, and the bubble cannot advance time once this goroutine has
	// returned, so it would end with those goroutines blocked.
	defer time.Sleep(drainAfterClose)
	mn := mocknet.New()
	defer mn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := newRecorder(sc, start)
	w := newWires(mn, sc.Link)

	nodes := make([]*honest, sc.Nodes)
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	var ro *rolloutRun
	if sc.Rollout != nil {
		var err error
		if ro, err = newRolloutRun(sc); err != nil {
			return Report{}, err
		}
		closers = append(closers, ro.close)
	}
	keys := make([]*identity.PrivateKey, sc.Nodes)
	hosts := make([]*simHost, sc.Nodes)
	for i := range nodes {
		key, err := keyFrom(rng)
		if err != nil {
			return Report{}, err
		}
		h, err := mn.AddPeer(key.Libp2pKey(), addrOf(i))
		if err != nil {
			return Report{}, err
		}
		nh := &simHost{Host: h, ctx: ctx, w: w, loss: sc.Link.LossPct / 100, seed: sc.Seed<<20 | uint64(i)}
		if sc.Node.ConnHigh > 0 {
			cm, err := connmgr.NewConnManager(sc.Node.ConnLow, sc.Node.ConnHigh)
			if err != nil {
				return Report{}, err
			}
			nh.cm = cm
			h.Network().Notify(cm.Notifee())
			closers = append(closers, func() { cm.Close() })
		}
		keys[i], hosts[i] = key, nh
	}
	g := newGraph(stream(sc, streamGraph), sc)
	rec.graph = g
	exhausted := exhaustTargets(sc)
	var pay *payEnv
	if sc.Payments != nil {
		pay = &payEnv{net: lightning.NewInProcessNetwork(nil), tally: newPayTally()}
	}

	// One signature verdict per envelope for the whole swarm: in virtual
	// time a check costs wall time and CPU but no simulated time, so
	// checking it at every node changes nothing but how long a run takes.
	sigs := gossip.NewSignatureCache()
	var readers sync.WaitGroup
	// startNode starts honest node i on its host; a restart calls it again
	// with the same key, host, data directory and traffic counter.
	startNode := func(i int, tr *traffic, dataDir string) (*honest, error) {
		if o.plain {
			p, err := startPlain(ctx, hosts[i], sc.Traffic.Topic, tr, &readers, func(msg uint64) { rec.deliver(i, msg, time.Now()) })
			return &honest{plain: p, id: hosts[i].ID(), traffic: tr}, err
		}
		cfg := node.LocalConfig()
		cfg.Key = keys[i]
		sc.Node.apply(&cfg)
		cfg.Logger = slog.New(slog.DiscardHandler)
		cfg.ScoreColocationWhitelist = nil
		cfg.Work = antispam.DifficultyConfig{Topics: map[string]uint8{sc.Traffic.Topic: sc.Traffic.WorkBits}}
		cfg.Ledger.OnBan = func(b antispam.Ban) { rec.ban(i, b, time.Now()) }
		if exhausted[i] {
			// A deployed node has a data directory (its anchors) and a few
			// bootstrap peers: here, its honest neighbours.
			cfg.DataDir = dataDir
			for _, e := range g.adj[i] {
				j := e.a + e.b - i
				cfg.BootstrapPeers = append(cfg.BootstrapPeers, fmt.Sprintf("%s/p2p/%s", addrOf(j), hosts[j].ID()))
			}
		}
		psOpts := []pubsub.Option{pubsub.WithRawTracer(tr)}
		if len(sc.Adversaries) > 0 {
			psOpts = append(psOpts, pubsub.WithPeerScoreInspect(func(m map[peer.ID]float64) { rec.scored(time.Now(), m) }, time.Second))
		}
		nopts := []node.Option{node.WithHost(hosts[i]), node.WithPubSubOptions(psOpts...), node.WithSharedSignatureCache(sigs)}
		var paid *lightning.Lightning
		if pay != nil {
			var err error
			if paid, err = lightning.New(sc.Payments.sellerConfig(pay.net)); err != nil {
				return nil, err
			}
			nopts = append(nopts, node.WithExtension(paid))
		}
		if ro != nil {
			inv, err := ro.extension(i)
			if err != nil {
				return nil, err
			}
			nopts = append(nopts, node.WithExtension(inv))
		}
		n, err := node.New(cfg, nopts...)
		if err != nil {
			return nil, err
		}
		if err := n.Start(ctx); err != nil {
			return nil, err
		}
		sub, err := n.Subscribe(sc.Traffic.Topic)
		if err != nil {
			n.Close()
			return nil, err
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			defer sub.Cancel()
			for {
				m, err := sub.Next(ctx)
				if err != nil {
					return
				}
				if !m.Local && len(m.Payload) >= 8 && m.From != keys[i].DeviceID() {
					rec.deliver(i, binary.BigEndian.Uint64(m.Payload), time.Now())
				}
			}
		}()
		return &honest{n: n, id: hosts[i].ID(), traffic: tr, dataDir: dataDir, pay: paid}, nil
	}
	var nodesMu sync.Mutex // guards nodes[i].n across a restart
	for i := range nodes {
		if stop.Load() {
			return stoppedEarly, nil
		}
		var dataDir string
		if exhausted[i] {
			d, err := os.MkdirTemp("", "bitmesh-sim-")
			if err != nil {
				return Report{}, err
			}
			closers = append(closers, func() { os.RemoveAll(d) })
			dataDir = d
		}
		h, err := startNode(i, &traffic{}, dataDir)
		if err != nil {
			return Report{}, err
		}
		nodes[i] = h
		closers = append(closers, func() {
			nodesMu.Lock()
			defer nodesMu.Unlock()
			if nodes[i].plain != nil {
				nodes[i].plain.close()
				return
			}
			nodes[i].n.Close()
		})
	}
	closers = append(closers, readers.Wait) // after the nodes' Close (defers run backwards)

	// Attackers of a cold boot are linked before the honest nodes are,
	// the others after.
	type pending struct {
		a, b    peer.ID
		latency time.Duration
	}
	var coldLinks, links []pending
	for _, e := range g.edges {
		links = append(links, pending{nodes[e.a].id, nodes[e.b].id, e.latency})
	}

	honestIDs := make([]identity.DeviceID, len(nodes))
	for i := range nodes {
		honestIDs[i] = keys[i].DeviceID()
	}
	var attackWG sync.WaitGroup
	attackErrs := make(chan error, 2*len(sc.Adversaries)) // Run's and a restart's
	for ai, spec := range sc.Adversaries {
		env := AttackEnv{Network: node.LocalConfig().Network, Topic: sc.Traffic.Topic, Spec: spec, Rand: rand.New(rand.NewPCG(sc.Seed, uint64(ai)+1)), Honest: honestIDs,
			Targets: map[peer.ID][]peer.ID{}, Payments: pay,
			Object: func(ctx context.Context) (*ObjectFacts, bool) {
				if ro == nil {
					return nil, false
				}
				return ro.facts(ctx)
			}}
		for range spec.Count {
			key, err := keyFrom(rng)
			if err != nil {
				return Report{}, err
			}
			h, err := mn.AddPeer(key.Libp2pKey(), addrOf(1<<20+len(rec.attackers)))
			if err != nil {
				return Report{}, err
			}
			rec.addAttacker(h.ID(), spec.Type)
			targets := rng.Perm(sc.Nodes)[:spec.Targets]
			switch spec.Type {
			case "eclipse":
				targets = []int{spec.Target} // all sybils crowd one node
			case "eclipse-exhaust":
				// The target first, then others to hear the traffic from.
				targets = append([]int{spec.Target}, slices.DeleteFunc(targets, func(i int) bool { return i == spec.Target })[:spec.Targets-1]...)
			}
			for _, target := range targets {
				l := pending{h.ID(), nodes[target].id, g.linkLatency(rng)}
				if spec.coldBoot() {
					coldLinks = append(coldLinks, l)
				} else {
					links = append(links, l)
				}
				rec.attackerLinked(h.ID(), target)
				env.Targets[h.ID()] = append(env.Targets[h.ID()], nodes[target].id)
			}
			ah := &simHost{Host: h, ctx: ctx, w: w, loss: sc.Link.LossPct / 100, seed: sc.Seed<<20 | uint64(1<<19+len(rec.attackers))}
			env.Attackers = append(env.Attackers, Attacker{Host: ah, Key: key})
		}
		adv := adversaryTypes[spec.Type]()
		attackWG.Add(1)
		go func() {
			defer attackWG.Done()
			select {
			case <-time.After(spec.begins(sc.Warmup.Duration)):
			case <-ctx.Done():
				return
			}
			rec.attackStarted(time.Now())
			if err := adv.Run(ctx, env); err != nil {
				attackErrs <- fmt.Errorf("adversary %s: %w", spec.Type, err)
			}
		}()
	}
	closers = append(closers, attackWG.Wait, cancel) // cancel first, then wait
	if stop.Load() {
		return stoppedEarly, nil
	}
	for _, l := range append(coldLinks, links...) {
		if err := w.connect(l.a, l.b, l.latency); err != nil {
			return Report{}, err
		}
	}

	// halt ends the publishers, disruptions and samplers of a run that
	// stops early. Made in the bubble, so waiting on it is durable.
	halt, haltRun := context.WithCancel(context.Background())
	defer haltRun()

	var restarts sync.WaitGroup
	for _, spec := range sc.Adversaries {
		if spec.Type != "eclipse-exhaust" {
			continue
		}
		t := spec.Target
		restarts.Add(2)
		go func() { // the target's honest peers, every second
			defer restarts.Done()
			honestIDs := map[peer.ID]bool{}
			for _, h := range hosts {
				honestIDs[h.ID()] = true
			}
			end := start.Add(sc.Warmup.Duration + time.Duration(sc.Traffic.Messages)*sc.Traffic.Interval.Duration + sc.Drain.Duration)
			for ok := sleepUntil(halt, time.Now().Add(sc.Warmup.Duration)); ok && time.Now().Before(end); ok = sleepUntil(halt, time.Now().Add(time.Second)) {
				count := 0
				for _, p := range hosts[t].Network().Peers() {
					if honestIDs[p] {
						count++
					}
				}
				rec.honestPeers(t, count)
			}
		}()
		go func() {
			defer restarts.Done()
			if spec.Restart.Duration == 0 {
				return
			}
			if !sleepUntil(halt, time.Now().Add(spec.begins(sc.Warmup.Duration)+spec.Restart.Duration)) {
				return
			}
			rec.restarted(t, time.Now())
			if err := restart(nodes, &nodesMu, t, startNode); err != nil {
				attackErrs <- fmt.Errorf("restarting node %d: %w", t, err)
			}
		}()
	}

	buyersDone := startBuyers(halt, sc, start, g, nodes, pay)
	waitPublishers := startPublishers(halt, sc, start, rec, func(p int, msg uint64) error {
		payload := make([]byte, sc.Traffic.Size)
		binary.BigEndian.PutUint64(payload, msg)
		if pl := nodes[p].plain; pl != nil {
			return pl.topic.Publish(ctx, payload)
		}
		_, err := nodes[p].n.Publish(ctx, sc.Traffic.Topic, payload)
		return err
	})

	end := start.Add(sc.Warmup.Duration + time.Duration(sc.Traffic.Messages)*sc.Traffic.Interval.Duration + sc.Drain.Duration)
	rolled := make(chan error, 1)
	if ro != nil {
		go func() { rolled <- ro.run(halt, start.Add(sc.Warmup.Duration)) }()
	} else {
		rolled <- nil
	}
	ids := make([]peer.ID, len(nodes))
	for i, h := range nodes {
		ids[i] = h.id
	}
	disrupted := make(chan struct{})
	go func() {
		defer close(disrupted)
		disrupt(halt, sc, g, newLinks(w, ids, g), rand.New(rand.NewPCG(sc.Seed, 0xc0ffee)), start.Add(sc.Warmup.Duration), end)
	}()
	stopped := false
	for now, shown := time.Now(), start; now.Before(end); now = time.Now() {
		if stopped = stop.Load(); stopped {
			haltRun()
			break
		}
		time.Sleep(min(pollStop, end.Sub(now)))
		if progress != nil && (time.Since(shown) >= time.Second || !time.Now().Before(end)) {
			shown = time.Now()
			fmt.Fprintf(progress, "\rsim %s: virtual %5.0fs of %.0fs, delivered %d of %d", sc.Name,
				time.Since(start).Seconds(), end.Sub(start).Seconds(), rec.deliveries(), rec.expected())
		}
	}
	if progress != nil {
		if stopped {
			fmt.Fprintf(progress, "\nsim %s: stopped at virtual %.1fs of %.0fs", sc.Name, time.Since(start).Seconds(), end.Sub(start).Seconds())
		}
		fmt.Fprintln(progress)
	}
	pubErr := waitPublishers()
	buyersDone()
	<-disrupted
	restarts.Wait()
	haltRun()
	if err := <-rolled; err != nil {
		return Report{}, err
	}
	if pubErr != nil {
		return Report{}, pubErr
	}
	rep := rec.report(nodes, time.Since(start))
	if pay != nil {
		rep.Payments = pay.tally.report()
	}
	if ro != nil {
		var sent float64
		for _, b := range rep.samples.nodeBytes {
			sent += b / 2 // sent+received per node: each byte counted at both ends
		}
		var perByte float64
		if delivered := rep.HonestDeliveryRatio * float64(rep.Messages*(sc.Nodes-1)*sc.Traffic.Size); delivered > 0 {
			perByte = sent / delivered
		}
		rep.Rollout = ro.report(perByte)
	}
	if stopped {
		rep.Partial, rep.Stopped = true, StoppedInterrupted
	}
	if o.atEnd != nil {
		o.atEnd()
	}
	cancel()
	attackWG.Wait()
	close(attackErrs)
	if err := <-attackErrs; err != nil {
		return rep, err
	}
	return rep, nil
}

// Random streams drawn from a scenario's seed. The topology and schedule
// have streams of their own, so a real-process run (RunProcesses), which
// draws no keys, gets the very same links, latencies and publish times.
const (
	streamGraph    = 0x6772617068
	streamSchedule = 0x7363686564
)

func stream(sc Scenario, id uint64) *rand.Rand { return rand.New(rand.NewPCG(sc.Seed, id)) }

// startPublishers sends the honest traffic: publisher p sends message
// p×messages+j at start + warmup + offset_p + j×interval through send,
// recording each publication first. The returned wait blocks until all
// are sent and returns the first error.
//
// Once halt is done the publishers send no more; an error of a send that
// halt interrupted is not reported.
func startPublishers(halt context.Context, sc Scenario, start time.Time, rec *recorder, send func(p int, msg uint64) error) (wait func() error) {
	var wg sync.WaitGroup
	errs := make(chan error, sc.Traffic.Publishers)
	for p, offset := range publishOffsets(sc) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range sc.Traffic.Messages {
				if !sleepUntil(halt, start.Add(sc.Warmup.Duration+offset+time.Duration(j)*sc.Traffic.Interval.Duration)) {
					return
				}
				msg := uint64(p*sc.Traffic.Messages + j)
				rec.publish(msg, p, time.Now())
				if err := send(p, msg); err != nil && halt.Err() == nil {
					errs <- fmt.Errorf("publisher %d message %d: %w", p, j, err)
					return
				}
			}
		}()
	}
	return func() error {
		wg.Wait()
		close(errs)
		return <-errs
	}
}

// sleepUntil sleeps until t and reports true, or returns false as soon as
// halt is done.
func sleepUntil(halt context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return halt.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return halt.Err() == nil
	case <-halt.Done():
		return false
	}
}

// publishOffsets draws each publisher's offset within the first interval.
func publishOffsets(sc Scenario) []time.Duration {
	rng := stream(sc, streamSchedule)
	out := make([]time.Duration, sc.Traffic.Publishers)
	for i := range out {
		out[i] = time.Duration(rng.Int64N(int64(sc.Traffic.Interval.Duration)))
	}
	return out
}

// keyFrom draws a device key from rng, so a seed reproduces the run.
func keyFrom(rng *rand.Rand) (*identity.PrivateKey, error) {
	for range 8 {
		var b [32]byte
		for i := range 4 {
			binary.BigEndian.PutUint64(b[8*i:], rng.Uint64())
		}
		if k, err := identity.PrivateKeyFromBytes(b[:]); err == nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("sim: no valid key drawn")
}

func addrOf(i int) ma.Multiaddr {
	return ma.StringCast(fmt.Sprintf("/ip4/10.%d.%d.%d/tcp/4001", i>>16&255, i>>8&255, i&255))
}

// traffic counts a node's GossipSub bytes and duplicates (pubsub.RawTracer).
type traffic struct {
	mu         sync.Mutex
	sent, recv int64
	duplicates int64
}

func (t *traffic) SendRPC(rpc *pubsub.RPC, _ peer.ID) {
	t.mu.Lock()
	t.sent += int64(proto.Size(&rpc.RPC))
	t.mu.Unlock()
}
func (t *traffic) RecvRPC(rpc *pubsub.RPC) {
	t.mu.Lock()
	t.recv += int64(proto.Size(&rpc.RPC))
	t.mu.Unlock()
}
func (t *traffic) DuplicateMessage(*pubsub.Message) {
	t.mu.Lock()
	t.duplicates++
	t.mu.Unlock()
}
func (t *traffic) Join(string)                                          {}
func (t *traffic) Leave(string)                                         {}
func (t *traffic) Graft(peer.ID, string)                                {}
func (t *traffic) Prune(peer.ID, string)                                {}
func (t *traffic) ValidateMessage(*pubsub.Message)                      {}
func (t *traffic) DeliverMessage(*pubsub.Message)                       {}
func (t *traffic) RejectMessage(*pubsub.Message, string)                {}
func (t *traffic) ThrottlePeer(peer.ID)                                 {}
func (t *traffic) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (t *traffic) UndeliverableMessage(*pubsub.Message)                 {}
func (t *traffic) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (t *traffic) OnClosedOutboundStream(peer.ID)                       {}
func (t *traffic) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}

var _ pubsub.RawTracer = (*traffic)(nil)

// exhaustTargets are the honest nodes an eclipse-exhaust adversary aims
// at: they get a data directory and bootstrap peers, as deployed nodes
// have, so that their anchors and protected slots are in play.
func exhaustTargets(sc Scenario) map[int]bool {
	out := map[int]bool{}
	for _, a := range sc.Adversaries {
		if a.Type == "eclipse-exhaust" {
			out[a.Target] = true
		}
	}
	return out
}

// restart stops honest node i, drops its connections as a process exit
// does, and starts it again from its data directory on the same host.
func restart(nodes []*honest, mu *sync.Mutex, i int, start func(int, *traffic, string) (*honest, error)) error {
	mu.Lock()
	defer mu.Unlock()
	old := nodes[i]
	if err := old.n.Close(); err != nil {
		return err
	}
	h := old.n.Host()
	for _, p := range h.Network().Peers() {
		_ = h.Network().ClosePeer(p)
	}
	fresh, err := start(i, old.traffic, old.dataDir)
	if err != nil {
		return err
	}
	nodes[i] = fresh
	return nil
}

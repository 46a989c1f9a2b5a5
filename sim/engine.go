package sim

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/node"
)

// Option tunes a Run.
type Option func(*runOptions)

type runOptions struct{ atEnd func() }

// AtEnd calls f when the run's virtual time is over, before any node
// closes: the moment to take a heap profile of the whole swarm.
func AtEnd(f func()) Option { return func(o *runOptions) { o.atEnd = f } }

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
	var rep Report
	var err error
	wall := time.Now()
	synctest.Test(t, func(*testing.T) { rep, err = run(sc, progress, o) })
	rep.WallSeconds = time.Since(wall).Seconds()
	return rep, err
}

// honest is one simulated bitmesh node.
type honest struct {
	n       *node.Node
	id      peer.ID
	traffic *traffic
}

// run is the whole simulation; it must be called inside a synctest bubble.
func run(sc Scenario, progress io.Writer, o runOptions) (Report, error) {
	start := time.Now()
	rng := rand.New(rand.NewPCG(sc.Seed, sc.Seed^0x5851f42d4c957f2d))
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
	var readers sync.WaitGroup
	for i := range nodes {
		key, err := keyFrom(rng)
		if err != nil {
			return Report{}, err
		}
		h, err := mn.AddPeer(key.Libp2pKey(), addrOf(i))
		if err != nil {
			return Report{}, err
		}
		tr := &traffic{}
		cfg := node.LocalConfig()
		cfg.Key = key
		sc.Node.apply(&cfg)
		cfg.Logger = slog.New(slog.DiscardHandler)
		cfg.ScoreColocationWhitelist = nil
		cfg.Work = antispam.DifficultyConfig{Topics: map[string]uint8{sc.Traffic.Topic: sc.Traffic.WorkBits}}
		idx := i
		cfg.Ledger.OnBan = func(b antispam.Ban) { rec.ban(idx, b, time.Now()) }
		nh := &simHost{Host: h, ctx: ctx, w: w, loss: sc.Link.LossPct / 100, seed: sc.Seed<<20 | uint64(i)}
		psOpts := []pubsub.Option{pubsub.WithRawTracer(tr)}
		if len(sc.Adversaries) > 0 {
			psOpts = append(psOpts, pubsub.WithPeerScoreInspect(func(m map[peer.ID]float64) { rec.scored(time.Now(), m) }, time.Second))
		}
		n, err := node.New(cfg, node.WithHost(nh), node.WithPubSubOptions(psOpts...))
		if err != nil {
			return Report{}, err
		}
		if err := n.Start(ctx); err != nil {
			return Report{}, err
		}
		closers = append(closers, func() { n.Close() })
		sub, err := n.Subscribe(sc.Traffic.Topic)
		if err != nil {
			return Report{}, err
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
				if !m.Local && len(m.Payload) >= 8 && m.From != key.DeviceID() {
					rec.deliver(idx, binary.BigEndian.Uint64(m.Payload), time.Now())
				}
			}
		}()
		nodes[i] = &honest{n: n, id: h.ID(), traffic: tr}
	}
	closers = append(closers, readers.Wait) // after the nodes' Close (defers run backwards)

	g := newGraph(stream(sc, streamGraph), sc)
	rec.graph = g
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
	for i, h := range nodes {
		honestIDs[i] = h.n.DeviceID()
	}
	var attackWG sync.WaitGroup
	attackErrs := make(chan error, len(sc.Adversaries))
	for ai, spec := range sc.Adversaries {
		env := AttackEnv{Network: node.LocalConfig().Network, Topic: sc.Traffic.Topic, Spec: spec, Rand: rand.New(rand.NewPCG(sc.Seed, uint64(ai)+1)), Honest: honestIDs}
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
			if spec.Type == "eclipse" {
				targets = []int{spec.Target} // all sybils crowd one node
			}
			for _, target := range targets {
				l := pending{h.ID(), nodes[target].id, g.linkLatency(rng)}
				if spec.coldBoot() {
					coldLinks = append(coldLinks, l)
				} else {
					links = append(links, l)
				}
				rec.attackerLinked(h.ID(), target)
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
	for _, l := range append(coldLinks, links...) {
		if err := w.connect(l.a, l.b, l.latency); err != nil {
			return Report{}, err
		}
	}

	waitPublishers := startPublishers(sc, start, rec, func(p int, msg uint64) error {
		payload := make([]byte, sc.Traffic.Size)
		binary.BigEndian.PutUint64(payload, msg)
		_, err := nodes[p].n.Publish(ctx, sc.Traffic.Topic, payload)
		return err
	})

	end := start.Add(sc.Warmup.Duration + time.Duration(sc.Traffic.Messages)*sc.Traffic.Interval.Duration + sc.Drain.Duration)
	ids := make([]peer.ID, len(nodes))
	for i, h := range nodes {
		ids[i] = h.id
	}
	disrupted := make(chan struct{})
	go func() {
		defer close(disrupted)
		disrupt(sc, g, newLinks(w, ids, g), rand.New(rand.NewPCG(sc.Seed, 0xc0ffee)), start.Add(sc.Warmup.Duration), end)
	}()
	for now := time.Now(); now.Before(end); now = time.Now() {
		time.Sleep(min(time.Second, end.Sub(now)))
		if progress != nil {
			fmt.Fprintf(progress, "\rsim %s: virtual %5.0fs of %.0fs, delivered %d of %d", sc.Name,
				time.Since(start).Seconds(), end.Sub(start).Seconds(), rec.deliveries(), rec.expected())
		}
	}
	if progress != nil {
		fmt.Fprintln(progress)
	}
	pubErr := waitPublishers()
	<-disrupted
	if pubErr != nil {
		return Report{}, pubErr
	}
	rep := rec.report(nodes, time.Since(start))
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
func startPublishers(sc Scenario, start time.Time, rec *recorder, send func(p int, msg uint64) error) (wait func() error) {
	var wg sync.WaitGroup
	errs := make(chan error, sc.Traffic.Publishers)
	for p, offset := range publishOffsets(sc) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range sc.Traffic.Messages {
				time.Sleep(time.Until(start.Add(sc.Warmup.Duration + offset + time.Duration(j)*sc.Traffic.Interval.Duration)))
				msg := uint64(p*sc.Traffic.Messages + j)
				rec.publish(msg, p, time.Now())
				if err := send(p, msg); err != nil {
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

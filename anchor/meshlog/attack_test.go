package meshlog_test

// Attacks on a node's logs by a peer with no rights, on real nodes over
// loopback (PROTOCOL.md §18.6, SECURITY.md).

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/anchor/meshlog"
	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/internal/storecheck/faulttest"
	"github.com/bitmesh/bitmesh/node"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bitmesh/bitmesh/internal/testnode"
	"github.com/bitmesh/bitmesh/internal/testwait"
)

// sealed signs an envelope on topic of network at time at.
func sealed(t *testing.T, key *identity.PrivateKey, network, topic string, at time.Time, seq uint64, payload string) []byte {
	t.Helper()
	env := &gossip.Envelope{Network: gossip.NetworkFromName(network), Time: at, Seq: seq, Topic: topic, Payload: []byte(payload)}
	raw, _, err := env.Seal(key)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func newKey(t *testing.T) *identity.PrivateKey {
	t.Helper()
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// logConfig is meshlog's default for topic, with checkpoints only when a
// test asks for them.
func logConfig(topic string) meshlog.Config {
	lc := meshlog.DefaultConfig()
	lc.Topics = []string{topic}
	lc.CheckpointInterval = time.Hour
	return lc
}

// startLog starts a node with cfg running a log extension with lc.
func startLog(t *testing.T, lc meshlog.Config, cfg node.Config) logNode {
	t.Helper()
	ml, err := meshlog.New(lc)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(cfg, node.WithExtension(ml))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return logNode{n, ml}
}

// storeWith returns a store whose log of topic holds leaves.
func storeWith(t *testing.T, store anchor.Store, topic string, leaves [][]byte) anchor.Store {
	t.Helper()
	l, err := anchor.OpenLog(store, "topic/"+topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, leaf := range leaves { // one at a time: AppendOne takes the largest leaves
		if _, err := l.AppendOne(leaf); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return store
}

// startPoisonedLog starts a node whose log of topic already holds leaves
// (a log operator that appended what it liked) and signs a checkpoint of
// it, before anyone connects.
func startPoisonedLog(t *testing.T, topic string, leaves [][]byte, cfg node.Config) logNode {
	t.Helper()
	lc := logConfig(topic)
	lc.Store = storeWith(t, anchor.NewMemoryStore(), topic, leaves)
	ln := startLog(t, lc, cfg)
	// Publishing it may fail (an uncertified node refuses its own
	// envelopes); the signed checkpoint is kept and served all the same.
	if signed, err := ln.log.Checkpoint(context.Background(), topic); signed == nil {
		t.Fatal(err)
	}
	return ln
}

// startLogVictim starts a node logging topic, handing what history sync
// recovers to recovered.
func startLogVictim(t *testing.T, topic string, cfg node.Config, recovered func(*gossip.Envelope)) logNode {
	t.Helper()
	lc := logConfig(topic)
	if recovered != nil {
		lc.Recovered = func(_ string, env *gossip.Envelope) { recovered(env) }
	}
	return startLog(t, lc, cfg)
}

func logSize(ml *meshlog.MeshLog) uint64 { return ml.Logs()[0].Size }

// TestHistorySyncAdmitsOnlyWhatLiveWould: a log operator serves history
// that the live path would refuse — envelopes dated 2001 and 2100, one
// signed by a device the victim banned, one with a bad signature, one of
// another topic, and a device's burst beyond its rate — among honest
// entries. The victim recovers exactly the honest entries and scores the
// operator.
func TestHistorySyncAdmitsOnlyWhatLiveWould(t *testing.T) {
	const topic = "sensors/quake"
	net := node.LocalConfig().Network
	now := time.Now()
	honest, banned, chatty, forger := newKey(t), newKey(t), newKey(t), newKey(t)
	burst := antispam.DefaultRateConfig().SenderBurst

	var leaves [][]byte
	want := map[string]bool{}
	for i := range 3 {
		p := fmt.Sprintf("honest %d", i)
		leaves = append(leaves, sealed(t, honest, net, topic, now.Add(-time.Duration(3-i)*time.Minute), uint64(i+1), p))
		want[p] = true
	}
	// One device's burst at one instant: its rate admits SenderBurst.
	for i := range burst + 50 {
		p := fmt.Sprintf("chatty %d", i)
		leaves = append(leaves, sealed(t, chatty, net, topic, now, uint64(i+1), p))
		if i < burst {
			want[p] = true
		}
	}
	leaves = append(leaves,
		sealed(t, forger, net, topic, time.Date(2001, 9, 1, 0, 0, 0, 0, time.UTC), 1, "dated 2001"),
		sealed(t, forger, net, topic, time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), 2, "dated 2100"),
		sealed(t, banned, net, topic, now, 1, "from a banned device"),
		sealed(t, forger, net, "other/topic", now, 3, "another topic"),
	)
	forged := sealed(t, forger, net, topic, now, 4, "bad signature")
	forged[len(forged)-1] ^= 1
	leaves = append(leaves, forged)

	evil := startPoisonedLog(t, topic, leaves, node.LocalConfig())

	got := make(chan string, len(leaves))
	victim := startLogVictim(t, topic, node.LocalConfig(), func(env *gossip.Envelope) { got <- string(env.Payload) })
	if err := victim.n.Ban(antispam.DeviceSubject(banned.DeviceID()), time.Hour, "test"); err != nil {
		t.Fatal(err)
	}
	connect(t, victim.n, evil.n)

	testwait.For(t, 20*time.Second, 20*time.Millisecond, func() error {
		if size := logSize(victim.log); size < uint64(len(want)) {
			return fmt.Errorf("victim logged %d of the %d honest entries", size, len(want))
		}
		if score := testnode.Score(t, victim.n, antispam.PeerSubject(evil.n.PeerID())); score == 0 {
			return fmt.Errorf("the log operator is not scored")
		}
		return nil
	})
	if size := logSize(victim.log); size != uint64(len(want)) {
		t.Fatalf("victim's log has %d entries, want the %d honest ones", size, len(want))
	}
	close(got)
	for p := range got {
		if !want[p] {
			t.Errorf("recovered %q, which the live path refuses", p)
		}
		delete(want, p)
	}
	if len(want) > 0 {
		t.Errorf("%d honest entries not recovered", len(want))
	}
}

// connect dials b from a.
func connect(t *testing.T, a, b *node.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Host().Connect(ctx, peer.AddrInfo{ID: b.PeerID(), Addrs: b.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// TestJunkCheckpointFloodCannotTurnWitnessAgainstItself: a plain GossipSub
// peer floods a witness with checkpoints of throwaway logs (a fresh key
// each) at 150 a second. The witness follows and cosigns only a budget of
// them, so its honest neighbour never bans the witness's device for its
// cosignature rate; the flooder is the one banned; and a log the witness
// is configured to witness is still cosigned after the flood.
func TestJunkCheckpointFloodCannotTurnWitnessAgainstItself(t *testing.T) {
	const junkTopic, honestTopic, flood = "junk", "site/b", 600
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	honestLog := startLogNodes(t, 1, honestTopic)[0]
	lc := logConfig("site/a")
	lc.WitnessOrigins = []string{honestLog.log.Logs()[0].Origin}
	cfg := node.LocalConfig()
	for _, a := range honestLog.n.Addrs() {
		cfg.BootstrapPeers = append(cfg.BootstrapPeers, a.String())
	}
	witness := startLog(t, lc, cfg).n
	testwait.For(t, 15*time.Second, 20*time.Millisecond, func() error {
		if len(honestLog.n.TopicPeers(meshlog.Topic)) == 0 || len(witness.TopicPeers(meshlog.Topic)) == 0 {
			return fmt.Errorf("witness and log not on %s yet", meshlog.Topic)
		}
		return nil
	})

	net := witness.NetworkName()
	junk := make([][]byte, flood)
	for i := range junk {
		k := newKey(t)
		c := anchor.Checkpoint{Origin: meshlog.Origin(net, k.DeviceID(), junkTopic), Size: 1, Root: [32]byte{byte(i), byte(i >> 8)}}
		signed, err := anchor.SignCheckpoint(c, k)
		if err != nil {
			t.Fatal(err)
		}
		payload, err := meshlog.Message{Kind: meshlog.KindCheckpoint, Note: signed}.Encode()
		if err != nil {
			t.Fatal(err)
		}
		junk[i] = sealed(t, k, net, meshlog.Topic, time.Now(), 1, string(payload))
	}
	flooder := rawPublisher(t, ctx, witness, meshlog.Topic)
	tick := time.NewTicker(time.Second / 150)
	for _, raw := range junk {
		<-tick.C
		if witness.Host().Network().Connectedness(flooder.id) != network.Connected {
			break // banned and cut off
		}
		_ = flooder.tp.Publish(ctx, raw)
	}
	tick.Stop()

	testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		if testnode.Score(t, witness, antispam.PeerSubject(flooder.id)) < 100 {
			return errors.New("the flooder is not banned by the witness")
		}
		return nil
	})
	if s := testnode.Score(t, honestLog.n, antispam.DeviceSubject(witness.DeviceID())); s >= 100 {
		t.Fatalf("the honest neighbour banned the witness's device (score %d)", s)
	}
	if honestLog.n.Host().Network().Connectedness(witness.PeerID()) != network.Connected {
		t.Fatal("the honest neighbour dropped the witness")
	}

	if _, err := honestLog.n.Publish(ctx, honestTopic, []byte("after the flood")); err != nil {
		t.Fatal(err)
	}
	if _, err := honestLog.log.Checkpoint(ctx, honestTopic); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 15*time.Second, 20*time.Millisecond, func() error {
		if got := honestLog.log.Logs()[0].Cosigners; len(got) != 1 || got[0] != witness.DeviceID() {
			return fmt.Errorf("honest checkpoint cosigned by %v, want the witness", got)
		}
		return nil
	})
}

// certifiedConfig is a node config of a permissioned mesh run by op; the
// key is certified when certified is set.
func certifiedConfig(t *testing.T, op, key *identity.PrivateKey, certified bool) node.Config {
	t.Helper()
	c := node.LocalConfig()
	c.Key = key
	c.Operators = []string{op.DeviceID().String()}
	c.AdmissionTimeout = 2 * time.Second
	if certified {
		now := time.Now()
		cert, err := identity.IssueCertificate(op, identity.Certificate{
			Network: c.Network, Device: key.DeviceID(), Roles: []string{"publish"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), Serial: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		if c.Certificate, err = cert.Encode(); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// TestUncertifiedLogGetsNothingIn: in a permissioned mesh, a peer without
// a certificate serves a log of envelopes (its own and a certified
// device's) during its admission window. The victim syncs nothing from it
// and disconnects it when the window ends.
func TestUncertifiedLogGetsNothingIn(t *testing.T) {
	const topic = "plant/valves"
	op, certifiedDevice, intruder := newKey(t), newKey(t), newKey(t)
	net := node.LocalConfig().Network
	now := time.Now()
	var leaves [][]byte
	for i := range 11 {
		leaves = append(leaves,
			sealed(t, intruder, net, topic, now, uint64(i+1), fmt.Sprintf("intruder %d", i)),
			sealed(t, certifiedDevice, net, topic, now, uint64(i+1), fmt.Sprintf("relayed %d", i)))
	}
	evil := startPoisonedLog(t, topic, leaves, certifiedConfig(t, op, intruder, false))
	victim := startLogVictim(t, topic, certifiedConfig(t, op, newKey(t), true), nil)
	connect(t, victim.n, evil.n)
	testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		if victim.n.Host().Network().Connectedness(evil.n.PeerID()) == network.Connected {
			return errors.New("uncertified peer still connected")
		}
		return nil
	})
	if size := logSize(victim.log); size != 0 {
		t.Fatalf("an uncertified peer put %d entries into the victim's log", size)
	}
}

// TestLoggedTopicQuota: a peer pushes 60 KB envelopes of ever new keys
// into a logged topic as fast as it can. The victim's log grows by no
// more than the topic's byte quota allows, the pusher is banned, and the
// refusals are counted.
//
// The refill rate is low so that the ban does not depend on how fast
// this machine pushes: the burst admits 34 envelopes and each second
// two more, so at least 140 of the 200 are refused (100 ban the pusher)
// whether the push takes 0.4 s (amd64) or 5-10 s (armv7 under qemu, a
// slow board). With 1 MiB/s it admitted 17 a second, and a 5 s push
// left the pusher at a score of 77-91.
func TestLoggedTopicQuota(t *testing.T) {
	const topic, count, size = "sensors/bulk", 200, 60 << 10
	const rate, burst = 128 << 10, 2 << 20 // bytes a second, bytes
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lc := logConfig(topic)
	lc.TopicQuota = meshlog.Quota{Bytes: rate, ByteBurst: burst}
	ln := startLog(t, lc, node.LocalConfig())
	victim, ml := ln.n, ln.log

	net := victim.NetworkName()
	payload := string(make([]byte, size))
	junk := make([][]byte, count)
	for i := range junk {
		junk[i] = sealed(t, newKey(t), net, topic, time.Now(), 1, payload)
	}
	pusher := rawPublisher(t, ctx, victim, topic)
	start := time.Now()
	tick := time.NewTicker(time.Second / 500) // under the victim's validation queue
	for _, raw := range junk {
		<-tick.C
		if victim.Host().Network().Connectedness(pusher.id) != network.Connected {
			break
		}
		_ = pusher.tp.Publish(ctx, raw)
	}
	tick.Stop()
	testwait.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		if s := testnode.Score(t, victim, antispam.PeerSubject(pusher.id)); s < 100 {
			return fmt.Errorf("the pusher is not banned (score %d, log %+v)", s, ml.Logs()[0])
		}
		return nil
	})
	elapsed := time.Since(start)
	info := ml.Logs()[0]
	bound := uint64(burst) + uint64(elapsed.Seconds()*rate)
	t.Logf("log holds %d entries, %d KiB after %v (bound %d KiB); refused %v", info.Size, info.Bytes>>10, elapsed.Round(time.Millisecond), bound>>10, info.Refused)
	if info.Bytes > bound {
		t.Fatalf("log grew to %d bytes, quota allows %d", info.Bytes, bound)
	}
	if info.Refused["peer-quota"] == 0 {
		t.Fatalf("no refusal counted: %v", info.Refused)
	}
}

// TestFullLogRefusesWithClearError: a log at MaxLogBytes refuses the next
// entry; the local publisher gets ErrLogFull, the refusal is counted, and
// what the log holds is untouched.
func TestFullLogRefusesWithClearError(t *testing.T) {
	const topic = "sensors/small-disk"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lc := logConfig(topic)
	lc.MaxLogBytes = 4 << 10
	ln := startLog(t, lc, node.LocalConfig())
	n, ml := ln.n, ln.log
	var err error
	payload := make([]byte, 1000)
	var published uint64
	for ; published < 10; published++ {
		if _, err = n.Publish(ctx, topic, payload); err != nil {
			break
		}
	}
	if !errors.Is(err, meshlog.ErrLogFull) {
		t.Fatalf("publish into a full log: %v, want ErrLogFull", err)
	}
	info := ml.Logs()[0]
	if info.Size != published || info.Bytes > lc.MaxLogBytes || info.Refused["log-full"] != 1 {
		t.Fatalf("after %d publishes: %+v", published, info)
	}
}

// TestDamagedLeafRefusedAtStart: one byte flipped in a logged entry on
// disk (bbolt's structure intact) makes the node refuse to start, naming
// the leaf and the repair command, instead of starting with an entry that
// "is not in the log" and a proof that fails.
func TestDamagedLeafRefusedAtStart(t *testing.T) {
	const topic = "sensors/disk"
	dir := t.TempDir()
	path := filepath.Join(dir, "anchor.db")
	store, err := anchor.OpenBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	leaves := make([][]byte, 40)
	for i := range leaves {
		leaves[i] = fmt.Appendf(nil, "entry-%03d|", i)
	}
	storeWith(t, store, topic, leaves)
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	faulttest.FlipByteIn(t, path, []byte("entry-017|"))

	ml, err := meshlog.New(logConfig(topic))
	if err != nil {
		t.Fatal(err)
	}
	cfg := node.LocalConfig()
	cfg.DataDir = dir
	n, err := node.New(cfg, node.WithExtension(ml))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	err = n.Start(context.Background())
	if !errors.Is(err, anchor.ErrCorrupt) || !strings.Contains(err.Error(), "leaf 17") || !strings.Contains(err.Error(), "bitmesh repair --data "+dir) {
		t.Fatalf("start on a damaged leaf: %v; want anchor.ErrCorrupt naming leaf 17 and the repair command", err)
	}
}

package mqtt

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/node"
	"github.com/bitmesh/bitmesh/node/ext"
)

// Receipter is where the gateway gets the receipts it publishes: the
// node's Merkle logs (*meshlog.MeshLog). Receipt fails with an error
// wrapping meshlog.ErrNoCheckpoint until a checkpoint covers the envelope,
// and meshlog.ErrUnknownTopic for a topic the node does not log.
type Receipter interface {
	Receipt(topic string, id gossip.ID) (anchor.Receipt, error)
}

// Gateway is the MQTT gateway extension. Its methods are safe for
// concurrent access.
type Gateway struct {
	// Set at New, never modified.
	cfg      Config
	receipts Receipter
	counts   *counters
	slots    chan struct{} // a token per pending message (Config.MaxPending)
	kick     chan struct{} // a batch is full, or the flush loop should look
	dedupe   *lru.Cache[string, *sent]

	mu       sync.Mutex // guards the fields below
	h        ext.Host
	log      *slog.Logger // h's logger, each message at most once per brokerLogEvery
	srv      *mochi.Server
	inline   *mochi.Client
	bridge   *bridge
	batches  *batcher
	journal  *journal
	meshSubs map[string]func() // mesh topic → cancel
	pendingR []pendingReceipt
	closed   bool
	addr     string // the broker's bound address
	ctx      context.Context
	stop     context.CancelFunc // ends ctx at Close: frees callers waiting for a slot
}

// item is one MQTT message on its way to the mesh.
type item struct {
	entry Entry
	qos   byte
	cl    *mochi.Client // to acknowledge; nil for the bridge (ack set)
	ack   func()        // acknowledges a bridged message
	key   string        // dedupe key; "" for QoS 0
	v5    bool
	qos2  bool // acknowledged with PUBREC, then mochi completes the exchange
}

// sent is what the gateway remembers of a QoS 1 message it took, by
// client ID and packet ID: a device that did not see its PUBACK sends the
// message again (DUP set), and must get the PUBACK without a second copy
// reaching the mesh.
type sent struct {
	hash    [32]byte
	done    bool     // published; false while in a batch
	waiters []waiter // retries waiting for the batch; guarded by Gateway.mu
}

// waiter is a retry to acknowledge once its message's batch is published.
type waiter struct {
	cl   *mochi.Client
	pid  uint16
	v5   bool
	qos2 bool
}

type pendingReceipt struct {
	topic string
	id    gossip.ID
	since time.Time
}

const (
	dedupeKeys      = 1 << 16
	maxPendingRcpts = 4096
	receiptMaxWait  = 10 * time.Minute
	inlineClientID  = "bitmesh-gateway"
)

var _ ext.Extension = (*Gateway)(nil)

// New returns a gateway; pass it to node.WithExtension. receipts, if not
// nil, is the node's logs: receipts of logged batches are then published
// on the companion topics.
func New(cfg Config, receipts Receipter) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d, err := lru.New[string, *sent](dedupeKeys)
	if err != nil {
		return nil, err
	}
	return &Gateway{cfg: cfg, receipts: receipts, counts: newCounters(), slots: make(chan struct{}, cfg.MaxPending),
		kick: make(chan struct{}, 1), dedupe: d}, nil
}

// Name implements ext.Extension.
func (g *Gateway) Name() string { return "mqtt" }

// Addr is the embedded broker's listen address once started ("" without
// one).
func (g *Gateway) Addr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.addr
}

// Start opens the journal, republishes what it holds that may not have
// reached the mesh, starts the broker and the bridge, and the flush and
// receipt loops.
func (g *Gateway) Start(h ext.Host) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.h != nil || g.closed {
		return errors.New("mqtt: started twice")
	}
	path := ""
	if dir := h.DataDir(); dir != "" {
		path = filepath.Join(dir, "mqtt.db")
	}
	j, err := openJournal(path)
	if err != nil {
		return err
	}
	g.h, g.journal = h, j
	// Refusals are logged per packet or connection a client chooses to
	// send: rate-limited, as the broker's own log is (they are counted).
	g.log = slog.New(newBrokerLog(h.Logger().Handler(), slog.LevelDebug, brokerLogEvery))
	g.ctx, g.stop = context.WithCancel(context.Background())
	g.batches = newBatcher(g.cfg.Linger, g.cfg.MaxBatchEntries, g.cfg.MaxBatchBytes)
	g.meshSubs = make(map[string]func())
	if err := g.recover(h); err != nil {
		return g.abortStart(err)
	}
	for _, m := range g.cfg.Mappings {
		if err := g.subscribeMeshLocked(m.Mesh); err != nil {
			return g.abortStart(err)
		}
	}
	if g.cfg.Listen != "" {
		if err := g.startBroker(h.Logger()); err != nil {
			return g.abortStart(err)
		}
	}
	if g.cfg.Bridge != "" {
		b, err := startBridge(g)
		if err != nil {
			return g.abortStart(err)
		}
		g.bridge = b
	}
	h.Go(g.flushLoop)
	if g.receipts != nil {
		h.Go(g.receiptLoop)
	}
	return nil
}

// recover republishes the journal's records after the last one known
// published (the mesh drops a copy it has by its ID) and fills the dedupe
// cache from every retained record, newest last. Called with g.mu held.
func (g *Gateway) recover(h ext.Host) error {
	recs, published, err := g.journal.records()
	if err != nil {
		return err
	}
	for _, r := range recs {
		env, err := gossip.Decode(r.raw)
		if err != nil {
			g.counts.add(countJournalBad)
			continue
		}
		// Journaled but maybe never published: published now, before any
		// client can connect, so that a retry acknowledged from the dedupe
		// cache below is in the log. (The node has no peers yet: live
		// subscribers miss it; nodes that log the topic fetch it by
		// history sync, PROTOCOL.md §18.6.)
		if r.seq > published {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := h.PublishSealed(ctx, r.topic, r.raw)
			cancel()
			if err != nil {
				// Its messages were never acknowledged: their devices'
				// retries are taken as new messages (no dedupe entry
				// below), so nothing is lost. Say so, and count it.
				g.counts.add(countRepublishFailed)
				h.Logger().Warn("mqtt: republishing a journaled batch failed; its messages count as new when retried", "topic", r.topic, "seq", r.seq, "err", err)
				continue
			}
			g.counts.add(countRepublished)
			g.journal.markPublished(r.seq)
		}
		if !IsBatch(env.Payload) {
			continue
		}
		b, err := DecodeBatch(env.Payload)
		if err != nil {
			g.counts.add(countJournalBad)
			continue
		}
		for _, e := range b.Entries {
			if e.Flags&FlagQoS1 != 0 {
				g.dedupe.Add(dedupeKey(e.ClientID, e.PacketID), &sent{hash: entryHash(e.Topic, e.Payload), done: true})
			}
		}
	}
	return nil
}

func (g *Gateway) abortStart(err error) error {
	g.closeLocked()
	return err
}

// Close stops the broker, the bridge and the loops; messages not yet in
// a durable batch are not acknowledged, so their devices send them again.
func (g *Gateway) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closeLocked()
}

func (g *Gateway) closeLocked() error {
	if g.closed {
		return nil
	}
	g.closed = true
	if g.stop != nil {
		g.stop()
	}
	var errs []error
	if g.bridge != nil {
		g.bridge.close()
	}
	if g.srv != nil {
		srv := g.srv
		g.mu.Unlock() // the broker's goroutines call back into hooks that take g.mu
		errs = append(errs, srv.Close())
		g.mu.Lock()
	}
	for _, cancel := range g.meshSubs {
		cancel()
	}
	if g.journal != nil {
		errs = append(errs, g.journal.close())
	}
	return errors.Join(errs...)
}

func (g *Gateway) running() (ext.Host, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.h == nil || g.closed {
		return nil, ErrClosed
	}
	return g.h, nil
}

func dedupeKey(client string, pid uint16) string {
	return fmt.Sprintf("%s\x00%d", client, pid)
}

func entryHash(topic string, payload []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write(payload)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// take is the way in for every MQTT message bound for the mesh: it
// answers a retry of a message already held, else waits for a pending
// slot (the backpressure: the caller is the client's read loop) and hands
// the message to the batcher. It returns false when the gateway closed.
func (g *Gateway) take(ctx context.Context, meshTopic string, it *item, dup bool) bool {
	if it.qos > 0 && dup {
		hash := entryHash(it.entry.Topic, it.entry.Payload)
		g.mu.Lock()
		if s, ok := g.dedupe.Get(it.key); ok && s.hash == hash {
			if !s.done {
				if it.cl != nil {
					s.waiters = append(s.waiters, waiter{it.cl, it.entry.PacketID, it.v5, it.qos2})
				} else if it.ack != nil {
					it.ack() // a bridge's broker redelivers; its first copy is held
				}
				g.mu.Unlock()
				g.counts.add(countRetryHeld)
				return true
			}
			g.mu.Unlock()
			g.counts.add(countRetryAcked)
			g.acknowledge(it)
			return true
		}
		g.mu.Unlock()
	}
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		<-g.slots
		return false
	}
	if it.key != "" {
		g.dedupe.Add(it.key, &sent{hash: entryHash(it.entry.Topic, it.entry.Payload)})
	}
	g.batches.add(it.entry.Time, meshTopic, it)
	g.mu.Unlock()
	g.counts.add(countReceived)
	g.poke() // a full batch is due now; a new one needs the timer re-armed
	return true
}

func (g *Gateway) poke() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// flushLoop seals and publishes batches as they become due, one at a
// time, in order.
func (g *Gateway) flushLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		h, err := g.running()
		if err != nil {
			return
		}
		now := h.Now()
		g.mu.Lock()
		due := g.batches.due(now)
		next, ok := g.batches.next()
		g.mu.Unlock()
		for _, b := range due {
			g.flush(ctx, h, b)
		}
		if len(due) > 0 {
			continue
		}
		wait := time.Hour
		if ok {
			wait = max(next.Sub(h.Now()), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-g.kick:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		case <-timer.C:
		}
	}
}

// flush seals b into one envelope, journals it, publishes it and then
// acknowledges and delivers its messages locally. A batch the mesh
// refuses is not acknowledged: QoS 1 devices send it again.
func (g *Gateway) flush(ctx context.Context, h ext.Host, b *openBatch) {
	defer func() {
		for range b.items {
			<-g.slots
		}
	}()
	entries := make([]Entry, len(b.items))
	for i, it := range b.items {
		entries[i] = it.entry
	}
	payload, err := EncodeBatch(entries)
	if err == nil {
		var raw []byte
		var id gossip.ID
		if raw, id, err = h.Seal(ctx, b.topic, payload); err == nil {
			var seq uint64
			if seq, err = g.journal.append(b.topic, raw); err == nil {
				if err = g.publish(ctx, h, b.topic, raw); err == nil {
					g.journal.markPublished(seq)
					g.published(h, b, id)
					return
				}
			}
		}
	}
	g.refuseBatch(h, b, err)
}

// publish hands raw to the mesh, waiting out the node's publish budget
// and congestion (the batch grows meanwhile) until ctx ends.
func (g *Gateway) publish(ctx context.Context, h ext.Host, topic string, raw []byte) error {
	for {
		_, err := h.PublishSealed(ctx, topic, raw)
		if err == nil {
			return nil
		}
		retry := retryAfter(err)
		if retry <= 0 {
			return err
		}
		g.counts.add(countPublishWait)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(retry):
		}
	}
}

// retryAfter is how long to wait before publishing again after err, or 0
// when err is final.
func retryAfter(err error) time.Duration {
	var r *node.RateLimitError
	if errors.As(err, &r) {
		return max(r.RetryAfter, time.Millisecond)
	}
	return 0
}

// published acknowledges a batch's QoS 1 messages, delivers it to the
// broker's own subscribers and queues its receipt.
func (g *Gateway) published(h ext.Host, b *openBatch, id gossip.ID) {
	g.counts.addN(countBatchedMsgs, uint64(len(b.items)))
	g.counts.add(countBatches)
	var waiters []waiter
	g.mu.Lock()
	for _, it := range b.items {
		if it.key == "" {
			continue
		}
		if s, ok := g.dedupe.Peek(it.key); ok && !s.done {
			s.done = true
			waiters = append(waiters, s.waiters...)
			s.waiters = nil
		}
	}
	if g.receipts != nil && len(g.pendingR) < maxPendingRcpts {
		g.pendingR = append(g.pendingR, pendingReceipt{topic: b.topic, id: id, since: h.Now()})
	} else if g.receipts != nil {
		g.counts.add(countReceiptsDropped)
	}
	g.mu.Unlock()
	signer := h.Key().DeviceID().String()
	for i, it := range b.items {
		g.acknowledge(it)
		g.deliverLocal(Delivered{Topic: it.entry.Topic, Payload: it.entry.Payload, Signer: signer, Client: it.entry.ClientID,
			Envelope: id.String(), Entry: i, Time: it.entry.Time}, it.entry.Flags&FlagRetain != 0)
	}
	for _, w := range waiters {
		g.writeAck(w.cl, w.pid, w.v5, w.qos2, packets.CodeSuccess)
	}
}

// refuseBatch counts and logs a batch that did not reach the mesh and
// tells its QoS 1 devices: MQTT 5 ones get a failed PUBACK, 3.1.1 ones
// (which cannot be told) are disconnected so that they send it again.
func (g *Gateway) refuseBatch(h ext.Host, b *openBatch, err error) {
	g.counts.addN(countMeshRefused, uint64(len(b.items)))
	h.Logger().Warn("mqtt: batch not published; its messages are not acknowledged", "topic", b.topic, "messages", len(b.items), "err", err)
	g.mu.Lock()
	for _, it := range b.items {
		if it.key != "" {
			g.dedupe.Remove(it.key)
		}
	}
	g.mu.Unlock()
	for _, it := range b.items {
		if it.qos == 0 || it.cl == nil {
			continue
		}
		if it.v5 {
			g.writeAck(it.cl, it.entry.PacketID, true, it.qos2, packets.ErrUnspecifiedError)
		} else if g.srv != nil {
			_ = g.srv.DisconnectClient(it.cl, packets.ErrServerUnavailable)
		}
	}
}

func (g *Gateway) acknowledge(it *item) {
	if it.qos == 0 {
		return
	}
	if it.ack != nil {
		it.ack()
		return
	}
	if it.cl != nil {
		g.writeAck(it.cl, it.entry.PacketID, it.v5, it.qos2, packets.CodeSuccess)
	}
}

// writeAck acknowledges a message: PUBACK for QoS 1; PUBREC for QoS 2,
// recorded in the client's inflight state as the broker itself does, so
// that the broker answers the client's PUBREL with PUBCOMP.
func (g *Gateway) writeAck(cl *mochi.Client, pid uint16, v5, qos2 bool, code packets.Code) {
	if cl.Closed() {
		return // it sends the message again on its next connection
	}
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pid, ReasonCode: code.Code}
	if v5 && code.Code >= 0x80 {
		ack.Properties.ReasonString = code.Reason
	}
	if qos2 {
		ack.FixedHeader.Type = packets.Pubrec
		ack.Created = time.Now().Unix()
		if code.Code < 0x80 {
			cl.State.Inflight.DecreaseReceiveQuota()
			cl.State.Inflight.Set(ack)
		}
	}
	if err := cl.WritePacket(ack); err == nil {
		g.counts.add(countAcked)
	}
}

// Stats is the gateway's counters, by name (GET /v1/mqtt), with the
// broker's count of messages dropped at a subscriber's in-flight bound.
func (g *Gateway) Stats() map[string]uint64 {
	out := g.counts.snapshot()
	g.mu.Lock()
	srv := g.srv
	g.mu.Unlock()
	out[countSubInflight] = 0
	if srv != nil {
		out[countSubInflight] = uint64(atomic.LoadInt64(&srv.Info.InflightDropped))
	}
	return out
}

// now is the node's clock (virtual in a simulation), or the wall clock
// before Start and after Close.
func (g *Gateway) now() time.Time {
	if h, err := g.running(); err == nil {
		return h.Now()
	}
	return time.Now()
}

func (g *Gateway) logger() *slog.Logger {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.log != nil {
		return g.log
	}
	return slog.Default()
}

package meshlog

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/node/ext"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Config configures the log extension.
type Config struct {
	// Topics are the mesh topics this node logs: every envelope it accepts
	// on them is appended to that topic's log.
	Topics []string
	// Store keeps the logs. Nil: DataDir/anchor.db (bbolt), or memory
	// without a data directory. A Store given here is not closed by Close.
	Store anchor.Store
	// CheckpointEvery signs and publishes a checkpoint once a log has grown
	// by this many entries. Smaller makes receipts available sooner, at one
	// signature and one gossip message per checkpoint.
	CheckpointEvery uint64
	// CheckpointInterval signs and publishes a checkpoint of every log that
	// grew since the last one, this often. It bounds how long an entry
	// waits for a receipt on a quiet topic.
	CheckpointInterval time.Duration
	// SyncWindow bounds history sync: a node fetches at most this many of
	// another log's most recent entries when it first meets the log or
	// has fallen further behind. Larger recovers longer outages at the
	// cost of memory and bandwidth during a sync.
	SyncWindow uint64
	// Recovered, if set, is called with each envelope that history sync
	// appended to this node's log: one the node missed while offline. It
	// must not block for long.
	Recovered func(topic string, env *gossip.Envelope)
	// Anchorers timestamp this node's checkpoints publicly (Bitcoin
	// OP_RETURN, OpenTimestamps); their proofs go into receipts. Empty:
	// no anchoring.
	Anchorers []anchor.Anchorer
	// AnchorInterval is how often a checkpoint is anchored: each anchor
	// costs a Bitcoin fee or a calendar request, and one an hour dates
	// every entry to within the hour.
	AnchorInterval time.Duration
	// Witness makes the node cosign other logs' checkpoints once it has
	// checked them consistent with the last one it saw. Every node checks
	// checkpoints and reports equivocation whether it witnesses or not.
	Witness bool
	// WitnessOrigins are other logs (origins) this node follows and
	// witnesses whatever the stranger budget. Logs of the topics in
	// Topics, and in a permissioned mesh logs of certified devices, are
	// followed anyway.
	WitnessOrigins []string
	// StrangerRate and StrangerBurst are the budget for logs new to this
	// node that it has no reason to follow, per forwarding peer and in
	// total (see follow.go). Higher lets a mesh grow faster than one new
	// log a second; every stranger costs a consistency check, a sync and
	// a cosignature, and anyone can make one with a fresh key.
	StrangerRate  rate.Limit
	StrangerBurst int
	// CosignRate and CosignBurst bound the cosignatures this node
	// publishes on Topic. Neighbours apply their per-device rate limit to
	// them (antispam.DefaultRateConfig: 50/s, bursts of 200); a witness
	// above it would get its own device banned.
	CosignRate  rate.Limit
	CosignBurst int
	// DeviceQuota bounds what one sending device puts into each logged
	// topic; TopicQuota what each topic takes in from one forwarding peer
	// and in total (see quota.go). Lower keeps a flood of envelopes from
	// ever new keys off the disk sooner; higher lets a gateway's burst
	// through. Both must let the topic's honest peak rate in.
	DeviceQuota, TopicQuota Quota
	// MaxLogBytes bounds each log's entry bytes; a full log refuses new
	// entries with ErrLogFull (a local publish fails) rather than fill the
	// disk. 0: no bound. The tree's hashes take about 64 bytes an entry
	// more.
	MaxLogBytes uint64
	// SkipVerifyAtStart skips rehashing every log's leaves and tree when
	// the node starts. The check costs about 3 s per million entries
	// (PERFORMANCE.md); without it a damaged leaf goes unnoticed until a
	// proof of it fails or `bitmesh repair` runs.
	SkipVerifyAtStart bool
}

// DefaultConfig logs nothing until Topics is set; checkpoints every 256
// entries or 10 s; witnessing on; one stranger log a second (bursts of
// 64); ten cosignatures a second (bursts of 100), a fifth of the default
// per-device limit; per device 256 KiB/s into each log (bursts of 2 MiB),
// per topic 2000 entries and 4 MiB a second (bursts of 8000 and 32 MiB);
// 1 GiB per log.
func DefaultConfig() Config {
	return Config{
		CheckpointEvery: 256, CheckpointInterval: 10 * time.Second, SyncWindow: 4096,
		AnchorInterval: time.Hour, Witness: true,
		StrangerRate: 1, StrangerBurst: 64, CosignRate: 10, CosignBurst: 100,
		DeviceQuota: Quota{Bytes: 256 << 10, ByteBurst: 2 << 20},
		TopicQuota:  Quota{Entries: 2000, EntryBurst: 8000, Bytes: 4 << 20, ByteBurst: 32 << 20},
		MaxLogBytes: 1 << 30,
	}
}

// Validate reports the first bad field.
func (c Config) Validate() error {
	for _, t := range c.Topics {
		if err := gossip.ValidTopic(t); err != nil {
			return fmt.Errorf("meshlog: topic %q: %w", t, err)
		}
		if strings.Contains(t, "+") || t == Topic {
			return fmt.Errorf("meshlog: topic %q cannot be logged (no '+', not %s)", t, Topic)
		}
	}
	if len(c.Anchorers) > 0 && c.AnchorInterval <= 0 {
		return errors.New("meshlog: AnchorInterval must be positive")
	}
	if c.CheckpointEvery == 0 || c.CheckpointInterval <= 0 || c.SyncWindow == 0 {
		return errors.New("meshlog: CheckpointEvery, CheckpointInterval and SyncWindow must be positive")
	}
	if c.StrangerRate <= 0 || c.StrangerBurst <= 0 || c.CosignRate <= 0 || c.CosignBurst <= 0 {
		return errors.New("meshlog: StrangerRate, StrangerBurst, CosignRate and CosignBurst must be positive")
	}
	for _, q := range []Quota{c.DeviceQuota, c.TopicQuota} {
		if err := q.Validate(); err != nil {
			return err
		}
	}
	for _, o := range c.WitnessOrigins {
		if _, _, _, err := ParseOrigin(o); err != nil {
			return fmt.Errorf("meshlog: WitnessOrigins: %w", err)
		}
	}
	return nil
}

// Origin is the log identity of topic kept by device on network: the
// checkpoint origin line and the log's note key name.
func Origin(network string, device identity.DeviceID, topic string) string {
	return network + "/" + device.String() + "/" + topic
}

// ParseOrigin splits an origin made by Origin.
func ParseOrigin(origin string) (network string, device identity.DeviceID, topic string, err error) {
	parts := strings.SplitN(origin, "/", 3)
	if len(parts) != 3 || parts[0] == "" || parts[2] == "" {
		return "", identity.DeviceID{}, "", fmt.Errorf("%w: origin %q is not network/device/topic", ErrWrongLog, origin)
	}
	if device, err = identity.ParseDeviceID(parts[1]); err != nil {
		return "", identity.DeviceID{}, "", fmt.Errorf("%w: origin %q: %v", ErrWrongLog, origin, err)
	}
	return parts[0], device, parts[2], nil
}

// MeshLog is the node extension that keeps per-topic logs, publishes
// signed checkpoints, witnesses other logs and reports equivocation. Its
// methods are safe for concurrent access.
type MeshLog struct {
	cfg Config

	// Set at New, never replaced; each is safe for concurrent use.
	seen           *lru.Cache[string, *followed] // other logs, by origin; see followedLog
	strangers      *antispam.RateLimiter         // new stranger logs per forwarding peer
	strangersTotal *rate.Limiter                 // new stranger logs in all
	cosigns        *rate.Limiter                 // cosignatures published
	syncs          chan struct{}                 // a token per running history sync
	kick           chan struct{}                 // a log reached CheckpointEvery

	strangersRefused, cosignsSkipped atomic.Uint64

	mu       sync.Mutex // guards the fields below
	h        ext.Host   // nil until Start
	store    anchor.Store
	ownStore bool
	logs     map[string]*topicLog // by topic
	byOrigin map[string]*topicLog
	anchored time.Time        // when a checkpoint was last anchored
	notifee  network.Notifiee // set by Start when the node logs topics
	closed   bool
}

// topicLog is one of this node's own logs.
type topicLog struct {
	topic, origin string
	log           *anchor.Log
	quota         *topicQuota
	meta          anchor.MetaStore // keeps checkpoints; nil: memory only

	// persistMu serialises checkpoint records: held from a change to
	// checkpoints until its record is stored (see saveCheckpoint). Taken
	// before mu.
	persistMu sync.Mutex

	mu    sync.Mutex // guards the fields below
	index map[gossip.ID]uint64
	bytes uint64 // entry bytes in the log
	// checkpoints this node signed, oldest first, with the cosignatures
	// and anchor proofs gathered for them; bounded by retain.
	checkpoints []ownCheckpoint
}

type ownCheckpoint struct {
	c         anchor.Checkpoint
	note      []byte
	cosigners []identity.DeviceID
	anchors   []anchor.AnchorProof // pending ones are upgraded in place
	signedAt  time.Time            // zero for one loaded from the store
}

const (
	maxOwnCheckpoints = 64 // recent own checkpoints kept for late cosignatures (plus anchored ones, see retain)
	maxSeenSizes      = 64 // recent sizes per followed log, for equivocation
	maxFollowedLogs   = 4096
)

var _ ext.Extension = (*MeshLog)(nil)

// New returns the extension; pass it to node.WithExtension.
func New(cfg Config) (*MeshLog, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	seen, err := lru.New[string, *followed](maxFollowedLogs)
	if err != nil {
		return nil, err
	}
	strangers, err := antispam.NewRateLimiter(antispam.RateConfig{PerPeer: cfg.StrangerRate, PeerBurst: cfg.StrangerBurst, MaxKeys: maxFollowedLogs})
	if err != nil {
		return nil, fmt.Errorf("meshlog: %w", err)
	}
	return &MeshLog{
		cfg:            cfg,
		seen:           seen,
		strangers:      strangers,
		strangersTotal: rate.NewLimiter(cfg.StrangerRate, cfg.StrangerBurst),
		cosigns:        rate.NewLimiter(cfg.CosignRate, cfg.CosignBurst),
		syncs:          make(chan struct{}, maxConcurrentSyncs),
		kick:           make(chan struct{}, 1),
	}, nil
}

// Name implements ext.Extension.
func (m *MeshLog) Name() string { return "meshlog" }

// Start opens the logs, loads the checkpoints this node signed of them,
// rebuilds their ID indexes, registers the stream protocol and watches the
// logged topics and Topic. It fails with ErrLogBehind if a log no longer
// holds a tree this node signed.
func (m *MeshLog) Start(h ext.Host) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.h != nil || m.closed {
		return errors.New("meshlog: started twice")
	}
	m.store = m.cfg.Store
	if m.store == nil {
		if dir := h.DataDir(); dir != "" {
			s, err := anchor.OpenBoltStore(filepath.Join(dir, "anchor.db"))
			if err != nil {
				return err
			}
			m.store = s
		} else {
			m.store = anchor.NewMemoryStore()
		}
		m.ownStore = true
	}
	m.h = h
	m.logs = make(map[string]*topicLog)
	m.byOrigin = make(map[string]*topicLog)
	meta, _ := m.store.(anchor.MetaStore)
	if _, mem := m.store.(*anchor.MemoryStore); mem && m.ownStore {
		meta = nil // dies with the node: a second copy of tl.checkpoints
	}
	where := "the configured log store"
	if bs, ok := m.store.(*anchor.BoltStore); ok {
		where = bs.Path()
	}
	for _, topic := range m.cfg.Topics {
		origin := Origin(h.NetworkName(), h.Key().DeviceID(), topic)
		l, err := anchor.OpenLog(m.store, "topic/"+topic)
		if err != nil {
			return m.abortStart(err)
		}
		if !m.cfg.SkipVerifyAtStart {
			if err := l.Verify(); err != nil {
				l.Close()
				return m.abortStart(fmt.Errorf("meshlog: %w; run \"bitmesh repair --data %s\" with the node stopped", err, h.DataDir()))
			}
		}
		q, err := newTopicQuota(m.cfg.DeviceQuota, m.cfg.TopicQuota)
		if err != nil {
			return m.abortStart(err)
		}
		tl := &topicLog{topic: topic, origin: origin, log: l, quota: q, meta: meta, index: make(map[gossip.ID]uint64)}
		m.logs[topic], m.byOrigin[origin] = tl, tl
		if err := tl.loadCheckpoints(h.Key().DeviceID(), h.Logger(), where); err != nil {
			return m.abortStart(err)
		}
		if err := tl.rebuildIndex(); err != nil {
			return m.abortStart(err)
		}
	}
	if err := h.HandleStream(ProtocolID, logStreams, m.handleStream); err != nil {
		return m.abortStart(err)
	}
	if len(m.logs) > 0 {
		m.notifee = connNotifee{m}
		h.Libp2p().Network().Notify(m.notifee)
	}
	for topic, tl := range m.logs {
		if err := h.Watch(topic, ext.TopicHook{Check: m.appender(tl, false), CheckRecovered: m.appender(tl, true)}); err != nil {
			return m.abortStart(err)
		}
	}
	if err := h.Watch(Topic, ext.TopicHook{Check: m.check, Accepted: m.accepted}); err != nil {
		return m.abortStart(err)
	}
	if len(m.logs) > 0 {
		h.Go(m.checkpointLoop)
	}
	return nil
}

// abortStart releases what Start opened. Callers hold m.mu.
func (m *MeshLog) abortStart(err error) error {
	m.closeLocked()
	return err
}

// Close stops the extension and closes the logs (and the store it opened).
func (m *MeshLog) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closeLocked()
}

func (m *MeshLog) closeLocked() error {
	if m.closed {
		return nil
	}
	m.closed = true
	var errs []error
	if m.h != nil && m.h.Libp2p() != nil {
		m.h.Libp2p().RemoveStreamHandler(ProtocolID)
		if m.notifee != nil {
			m.h.Libp2p().Network().StopNotify(m.notifee)
		}
	}
	for _, tl := range m.logs {
		errs = append(errs, tl.log.Close())
	}
	if m.ownStore && m.store != nil {
		errs = append(errs, m.store.Close())
	}
	return errors.Join(errs...)
}

// running returns the host, or ErrClosed.
func (m *MeshLog) running() (ext.Host, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.h == nil || m.closed {
		return nil, ErrClosed
	}
	return m.h, nil
}

// rebuildIndex maps every logged envelope's ID to its leaf index, reading
// the log once at start. An entry whose ID repeats keeps its first index.
func (tl *topicLog) rebuildIndex() error {
	size := tl.log.Size()
	for i := uint64(0); i < size; i++ {
		leaf, err := tl.log.Leaf(i)
		if err != nil {
			return err
		}
		id := gossip.MessageID(leaf)
		if _, dup := tl.index[id]; !dup {
			tl.index[id] = i
		}
		tl.bytes += uint64(len(leaf))
	}
	return nil
}

// appender returns the Check hook of a logged topic: each envelope the
// node accepts is appended durably before it counts as accepted, so a local
// Publish returns only once its envelope is in the log, and an envelope
// the log could not take is dropped (Ignore) rather than delivered
// unlogged. Live envelopes pass the topic's quotas first; recovered
// history, a backlog that arrives at once and was already checked against
// the sender's rate in its own time, only the topic's total quota, with no
// one scored (quota.go).
func (m *MeshLog) appender(tl *topicLog, recovered bool) func(peer.ID, *gossip.Envelope, []byte) error {
	return func(from peer.ID, env *gossip.Envelope, raw []byte) error {
		h, err := m.running()
		if err != nil {
			return fmt.Errorf("%w: %v", ext.ErrIgnore, err)
		}
		id := gossip.MessageID(raw)
		tl.mu.Lock()
		_, dup := tl.index[id]
		full := m.cfg.MaxLogBytes > 0 && tl.bytes+uint64(len(raw)) > m.cfg.MaxLogBytes
		tl.mu.Unlock()
		if dup {
			return nil // the same envelope with another valid signature
		}
		if err := tl.quota.admit(h, from, h.Libp2p().ID(), env, len(raw), recovered); err != nil {
			return err
		}
		if full {
			tl.quota.count(refusedFull)
			return fmt.Errorf("%w: %w: %q holds %d bytes", ext.ErrIgnore, ErrLogFull, tl.topic, m.cfg.MaxLogBytes)
		}
		i, err := tl.log.AppendOne(raw)
		if err != nil {
			if !errors.Is(err, anchor.ErrClosed) { // closing: nothing to report
				tl.quota.count(refusedStore)
				m.logger().Error("log append failed", "topic", tl.topic, "err", err)
			}
			return fmt.Errorf("%w: log %q: %w", ext.ErrIgnore, tl.topic, err)
		}
		tl.mu.Lock()
		if _, dup := tl.index[id]; !dup {
			tl.index[id] = i
		}
		tl.bytes += uint64(len(raw))
		last := uint64(0)
		if n := len(tl.checkpoints); n > 0 {
			last = tl.checkpoints[n-1].c.Size
		}
		tl.mu.Unlock()
		if i+1-last >= m.cfg.CheckpointEvery {
			select {
			case m.kick <- struct{}{}:
			default:
			}
		}
		return nil
	}
}

func (m *MeshLog) logger() *slog.Logger {
	if h, err := m.running(); err == nil {
		return h.Logger()
	}
	return slog.Default()
}

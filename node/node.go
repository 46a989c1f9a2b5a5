package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/internal/version"
	"github.com/bitmesh/bitmesh/node/ext"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/multiformats/go-multiaddr"
)

// UserAgent is announced to peers through libp2p identify: the module
// version and VCS revision the binary was built from (internal/version).
var UserAgent = version.UserAgent()

// Node is a bitmesh mesh participant: a libp2p host running GossipSub whose
// topics carry signed envelopes validated by the gossip pipeline. Its methods
// are safe for concurrent access.
type Node struct {
	// Set at creation, never modified.
	cfg       Config
	opts      options
	key       *identity.PrivateKey
	network   gossip.Network
	log       *slog.Logger
	clock     func() time.Time
	validator *gossip.Validator
	// validateTimes and sealTimes time the receive path and the mint
	// and signature of own envelopes (ValidateTimes, SealTimes).
	validateTimes, sealTimes *durations
	bootstrap                []peer.AddrInfo
	anchors                  []peer.AddrInfo // from the anchors file; set in Start, read-only after
	self                     peer.ID
	def                      *defences  // ledger and store are set by Start
	adm                      *admission // nil in an open mesh

	seq atomic.Uint64 // last sequence number used

	mu         sync.Mutex // guards the fields below
	started    bool
	closed     bool
	host       host.Host
	ps         *pubsub.PubSub
	topics     map[string]*pubsub.Topic
	stopMDNS   func() error
	admissionT *pubsub.Topic   // permissioned meshes only
	extensions []ext.Extension // started, in start order
	ctx        context.Context // lives until Close
	cancel     context.CancelFunc

	hooksMu sync.RWMutex // guards hooks; taken on every validation
	hooks   map[string]ext.TopicHook

	streamsMu      sync.Mutex // guards streamRefusals
	streamRefusals map[protocol.ID]*atomic.Uint64

	refusedMu sync.Mutex          // guards refused
	refused   map[gossip.ID]error // why own envelopes were refused; see Publish

	drops dropCounters    // every envelope not delivered, by reason (drops.go)
	msgs  messageCounters // every envelope accepted, own or not (counters.go)
	out   *outbound       // peers' outbound queues, for Publish (backpressure.go)
	in    *inflow         // how long received envelopes wait (inflow.go)

	// Leaving idle topics (topics.go). Guarded by mu; made on first use.
	topicUses map[string]*topicUse

	wg sync.WaitGroup // every goroutine the node starts

	// spawnMu guards stopping. Callbacks from libp2p (connection events,
	// mDNS, bans) start goroutines through goIfRunning, which must not take
	// n.mu: libp2p may call them while Start holds n.mu for its dials.
	spawnMu  sync.Mutex
	stopping bool
}

// New checks cfg and loads (or creates) the node's identity. It does no
// networking: Start does.
func New(cfg Config, opts ...Option) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	key, err := loadKey(cfg)
	if err != nil {
		return nil, err
	}
	def, err := newDefences(cfg)
	if err != nil {
		return nil, err
	}
	vc := cfg.validatorConfig()
	vc.Work = def.work
	vc.SharedSignatures = o.sharedSignatures
	v, err := gossip.NewValidator(vc)
	if err != nil {
		return nil, err
	}
	self, err := key.DeviceID().PeerID()
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	var adm *admission
	if len(cfg.Operators) > 0 {
		if adm, err = newAdmission(cfg, key.DeviceID()); err != nil {
			return nil, err
		}
	}
	bootstrap, _ := parseBootstrap(cfg.BootstrapPeers) // checked by Validate
	n := &Node{
		cfg:            cfg,
		opts:           o,
		key:            key,
		network:        gossip.NetworkFromName(cfg.Network),
		log:            cfg.Logger,
		clock:          cfg.Clock,
		validator:      v,
		validateTimes:  newDurations(validateBounds),
		sealTimes:      newDurations(sealBounds),
		bootstrap:      bootstrap,
		self:           self,
		def:            def,
		adm:            adm,
		topics:         make(map[string]*pubsub.Topic),
		hooks:          make(map[string]ext.TopicHook),
		streamRefusals: make(map[protocol.ID]*atomic.Uint64),
		refused:        make(map[gossip.ID]error),
		out:            newOutbound(cfg.OutboundQueueSize),
		in:             newInflow(),
	}
	if n.log == nil {
		n.log = slog.Default()
	}
	if n.clock == nil {
		n.clock = time.Now
	}
	// Sequence numbers start at the clock so a restarted device keeps
	// counting upwards without storing anything, as pubsub's seqnos do.
	n.seq.Store(uint64(n.clock().UnixNano()))
	return n, nil
}

func loadKey(cfg Config) (*identity.PrivateKey, error) {
	switch {
	case cfg.Key != nil:
		return cfg.Key, nil
	case cfg.DataDir == "":
		return identity.Generate()
	}
	key, created, err := identity.LoadOrCreate(identity.KeyPath(cfg.DataDir), cfg.KeyPassphrase)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if created && cfg.Logger != nil {
		cfg.Logger.Info("created identity", "device_id", key.DeviceID(), "path", identity.KeyPath(cfg.DataDir))
	}
	return key, nil
}

// Start brings the node onto the network: it listens, starts GossipSub,
// dials the bootstrap peers once (failures are logged and retried in the
// background) and starts mDNS. ctx bounds only the start itself.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.closed:
		return ErrClosed
	case n.started:
		return ErrAlreadyStarted
	}
	if err := n.openLedger(); err != nil {
		return err
	}
	h := n.opts.host
	if h == nil {
		var err error
		if h, err = n.newHost(); err != nil {
			n.def.store.Close()
			return err
		}
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	whitelist, _ := parseCIDRs(n.cfg.ScoreColocationWhitelist) // checked by Validate
	psOpts := append([]pubsub.Option{
		pubsub.WithMessageIdFn(gossip.PubSubMessageID),
		// The envelope authenticates every message; a second, libp2p-level
		// signature would double the cost of every publish and check.
		pubsub.WithNoAuthor(),
		pubsub.WithSeenMessagesTTL(n.validator.Config().Window()),
		pubsub.WithMaxMessageSize(maxRPCSize),
		pubsub.WithPeerExchange(true),
		// Send own messages to every topic peer, not only the mesh: a new
		// subscriber's mesh is empty until the next heartbeat, and flooding
		// one's own messages defeats eclipse by a few mesh peers
		// (gossipsub v1.1 hardening). pubsub v0.19 defaults it off.
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerScore(antispam.PeerScoreParams(n.appScore, whitelist), antispam.PeerScoreThresholds()),
		pubsub.WithRawTracer(dropTracer{&n.drops, n.out, n.in}),
		pubsub.WithValidateQueueSize(n.cfg.ValidateQueueSize),
		pubsub.WithPeerOutboundQueueSize(n.cfg.OutboundQueueSize),
	}, n.opts.pubsub...)
	ps, err := pubsub.NewGossipSub(n.ctx, meteredHost{h, n}, psOpts...)
	if err != nil {
		n.cancel()
		if n.opts.host == nil {
			h.Close()
		}
		n.def.store.Close()
		return fmt.Errorf("node: starting gossipsub: %w", err)
	}
	n.host, n.ps, n.started = h, ps, true
	n.spawn(n.leaveIdleTopicsLoop)
	if n.adm != nil {
		// Fails only if the fresh pubsub refuses a topic; the node is
		// started by now, so Close releases everything.
		if err := n.startAdmission(); err != nil {
			return err
		}
	}
	// Extensions join topics and register stream handlers through the
	// node's own methods, which take n.mu. They start before any dial, so
	// their protocols are there for the first peers.
	n.mu.Unlock()
	err = n.startExtensions()
	n.mu.Lock()
	switch {
	case err != nil:
		return err // started: Close releases everything
	case n.closed:
		return ErrClosed
	}
	anchors, err := loadAnchors(n.cfg.DataDir)
	if err != nil {
		n.log.Warn("starting without anchors", "err", err)
	}
	n.anchors = anchors
	n.startProtection()
	n.dialAll(ctx, n.protectedPeers())
	if len(n.protectedPeers()) > 0 {
		n.spawn(n.bootstrapLoop)
	}
	if n.cfg.MDNS {
		if err := n.startMDNS(); err != nil {
			n.log.Warn("mDNS discovery not started", "err", err)
		}
	}
	n.log.Info("node started", "device_id", n.key.DeviceID(), "peer_id", h.ID(), "network", n.cfg.Network, "addrs", h.Addrs())
	return nil
}

func (n *Node) newHost() (host.Host, error) {
	cm, err := connmgr.NewConnManager(n.cfg.ConnLow, n.cfg.ConnHigh)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	protos := n.streamProtocols()
	for id := range protos {
		n.refusals(id) // counted from the first stream on
	}
	rm, err := resourceManager(protos, n.cfg.ResourceMemory, rcmgr.WithMetrics(refusalReporter{n}))
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	lo := []libp2p.Option{
		libp2p.ResourceManager(rm),
		libp2p.Identity(n.key.Libp2pKey()),
		libp2p.ListenAddrStrings(n.cfg.ListenAddrs...),
		libp2p.UserAgent(UserAgent),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(gater{n}),
	}
	if n.cfg.NATPortMap {
		lo = append(lo, libp2p.NATPortMap())
	}
	lo = append(lo, n.opts.libp2p...)
	h, err := libp2p.New(lo...)
	if err != nil {
		return nil, fmt.Errorf("node: starting libp2p host: %w", err)
	}
	return h, nil
}

// spawn runs f in a goroutine that Close waits for. Callers hold n.mu and
// the node is started and not closed; callbacks use goIfRunning.
func (n *Node) spawn(f func(ctx context.Context)) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f(n.ctx)
	}()
}

// goIfRunning runs f in a goroutine that Close waits for, unless the node
// is closing. Safe to call from any goroutine, holding no lock.
func (n *Node) goIfRunning(f func(ctx context.Context)) {
	n.spawnMu.Lock()
	defer n.spawnMu.Unlock()
	if !n.stopping {
		n.spawn(f)
	}
}

// Close leaves the mesh and stops every goroutine the node started. It is
// idempotent.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	if !n.started {
		n.mu.Unlock()
		return nil
	}
	n.mu.Unlock()
	// Before the topics close: leaving a topic drops GossipSub's delivery
	// tags, which rank the anchors.
	errs := []error{n.saveAnchors(), n.closeExtensions()}
	n.mu.Lock()
	n.cancel()
	for name, t := range n.topics {
		_ = t.Close() // fails only while subscriptions are live; the pubsub shuts down with ctx
		delete(n.topics, name)
	}
	h, stopMDNS := n.host, n.stopMDNS
	n.mu.Unlock()
	n.spawnMu.Lock()
	n.stopping = true // no goroutine starts after this, so wg.Wait is final
	n.spawnMu.Unlock()
	if stopMDNS != nil {
		// Outside n.mu: mDNS may be inside HandlePeerFound, which takes it.
		errs = append(errs, stopMDNS())
	}
	n.wg.Wait()
	if n.opts.host == nil {
		errs = append(errs, h.Close())
	}
	errs = append(errs, n.def.store.Close())
	return errors.Join(errs...)
}

// DeviceID returns the node's device ID.
func (n *Node) DeviceID() identity.DeviceID { return n.key.DeviceID() }

// PeerID returns the node's libp2p peer ID (the same key as DeviceID).
func (n *Node) PeerID() peer.ID { return n.self }

// Network returns the node's network magic.
func (n *Node) Network() gossip.Network { return n.network }

// Host returns the libp2p host, for extensions and tests. Nil before Start.
func (n *Node) Host() host.Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.host
}

// Addrs returns the node's full listen multiaddrs, each ending in
// /p2p/<peer id>, ready to hand to another node as a bootstrap peer.
func (n *Node) Addrs() []multiaddr.Multiaddr {
	h := n.Host()
	if h == nil {
		return nil
	}
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	if err != nil {
		return nil
	}
	return addrs
}

// Peers returns the peers the node is connected to.
func (n *Node) Peers() []peer.ID {
	h := n.Host()
	if h == nil {
		return nil
	}
	return h.Network().Peers()
}

// TopicPeers returns the connected peers known to subscribe to topic.
func (n *Node) TopicPeers(topic string) []peer.ID {
	n.mu.Lock()
	ps := n.ps
	n.mu.Unlock()
	if ps == nil {
		return nil
	}
	return ps.ListPeers(n.pubsubTopic(topic))
}

// ValidatorStats returns the validation work counters.
func (n *Node) ValidatorStats() gossip.Stats { return n.validator.Stats() }

// Connect dials a peer given as a full multiaddr (…/p2p/<peer id>).
func (n *Node) Connect(ctx context.Context, addr string) error {
	infos, err := parseBootstrap([]string{addr})
	if err != nil {
		return err
	}
	h := n.Host()
	if h == nil {
		return ErrNotStarted
	}
	return h.Connect(ctx, infos[0])
}

// PubSubTopic maps a mesh topic to its GossipSub topic on the named
// network: the network name is part of it so meshes never share a topic.
func PubSubTopic(network, topic string) string {
	return "bitmesh/" + network + "/" + topic
}

func (n *Node) pubsubTopic(topic string) string { return PubSubTopic(n.cfg.Network, topic) }

func (n *Node) observe(from peer.ID, topic string, r gossip.Result) {
	n.msgs.count(from == n.self, r)
	if r.Verdict != gossip.Accept {
		n.drops.add(dropReason(r.Err), 1)
		n.log.Debug("envelope dropped", "topic", topic, "from", from, "verdict", r.Verdict, "err", r.Err)
	}
	if n.opts.observer != nil {
		n.opts.observer(from, topic, r)
	}
}

// NetworkName returns the network name from the node's Config.
func (n *Node) NetworkName() string { return n.cfg.Network }

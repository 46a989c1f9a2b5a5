package node

import (
	"context"
	"errors"
	"fmt"
	lru "github.com/hashicorp/golang-lru/v2"
	"path/filepath"
	"time"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// BanStoreFileName is the ban database's name inside the data directory.
const BanStoreFileName = "bans.db"

// defences is the node's anti-spam state: what a topic costs to publish
// on, how fast peers and devices may send, and who misbehaved.
type defences struct {
	work    *antispam.Difficulty
	limiter *antispam.RateLimiter
	ledger  *antispam.Ledger
	store   antispam.BanStore
	// subjects caches peers' ledger subjects (see peerSubject); bounded,
	// since it is keyed by whoever connects.
	subjects *lru.Cache[peer.ID, antispam.Subject]
}

// subjectCacheSize covers the connections of a well-connected node.
const subjectCacheSize = 1024

// newDefences builds the policy objects; they do no IO.
func newDefences(cfg Config) (*defences, error) {
	work, err := antispam.NewDifficulty(cfg.Work)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	limiter, err := antispam.NewRateLimiter(cfg.Rate)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	subjects, err := lru.New[peer.ID, antispam.Subject](subjectCacheSize)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	return &defences{work: work, limiter: limiter, subjects: subjects}, nil
}

// openLedger opens the ban store (DataDir/bans.db, or memory) and loads
// the ledger from it. Start calls it: a node that was only created holds
// no file lock.
func (n *Node) openLedger() error {
	var store antispam.BanStore = antispam.NewMemoryStore()
	if n.cfg.DataDir != "" {
		var err error
		if store, err = antispam.OpenBoltStore(filepath.Join(n.cfg.DataDir, BanStoreFileName)); err != nil {
			return fmt.Errorf("node: %w", err)
		}
	}
	lc := n.cfg.Ledger
	lc.OnBan = n.onBan
	if user := n.cfg.Ledger.OnBan; user != nil {
		lc.OnBan = func(b antispam.Ban) { n.onBan(b); user(b) }
	}
	ledger, err := antispam.NewLedger(n.clock(), lc, store)
	if err != nil {
		store.Close()
		return fmt.Errorf("node: %w", err)
	}
	n.def.ledger, n.def.store = ledger, store
	return nil
}

// penalise records misbehaviour; a store failure is logged, not fatal: the
// ban still holds in memory.
func (n *Node) penalise(s antispam.Subject, m antispam.Misbehaviour) {
	if _, _, err := n.def.ledger.Record(n.clock(), s, m); err != nil {
		n.log.Error("recording misbehaviour", "subject", s, "misbehaviour", m, "err", err)
	}
}

// peerBanned reports whether p is banned as a peer or as the device its
// key names (device and peer are one key), or, in a permissioned mesh, is a
// device whose certificates are all revoked.
func (n *Node) peerBanned(p peer.ID) bool {
	now := n.clock()
	if _, banned := n.def.ledger.Banned(now, n.peerSubject(p)); banned {
		return true
	}
	if d, err := identity.DeviceIDFromPeerID(p); err == nil {
		if _, banned := n.def.ledger.Banned(now, antispam.DeviceSubject(d)); banned {
			return true
		}
		// A device whose every certificate is revoked cannot be admitted:
		// refuse it before it costs an admission exchange.
		return n.adm != nil && n.adm.revoked.RevokesDevice(d)
	}
	return false
}

// onBan disconnects a banned subject's peer. It runs on the goroutine that
// caused the ban (often inside a GossipSub validator), so the disconnect is
// handed to a node goroutine. Bans happen only once the node is started.
func (n *Node) onBan(b antispam.Ban) {
	n.log.Warn("banned", "subject", b.Subject, "until", b.Until, "reason", b.Reason)
	p, err := b.Subject.PeerID()
	if err != nil {
		return
	}
	n.goIfRunning(func(context.Context) { _ = n.host.Network().ClosePeer(p) })
}

// peerSubject is antispam.PeerSubject with the peer ID's base58 text
// cached: GossipSub asks for every peer's score on each RPC and heartbeat,
// and encoding the ID each time was 11 % of a simulated node's CPU.
func (n *Node) peerSubject(p peer.ID) antispam.Subject {
	if s, ok := n.def.subjects.Get(p); ok {
		return s
	}
	s := antispam.PeerSubject(p)
	n.def.subjects.Add(p, s)
	return s
}

// appScore is GossipSub's application-specific score (P5): minus the
// ledger's score, so the ledger's view steers mesh selection and gossip
// long before a ban.
func (n *Node) appScore(p peer.ID) float64 {
	return -float64(n.def.ledger.Score(n.clock(), n.peerSubject(p)))
}

// topicValidator is the GossipSub validator of one topic: the per-peer
// rate limit, the gossip pipeline, then sender bans and the per-sender rate
// limit, with every fault recorded in the ledger.
func (n *Node) topicValidator(topic string) pubsub.ValidatorEx {
	return func(_ context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		now := n.clock()
		local := from == n.self
		if !local && !n.def.limiter.AllowPeer(now, from) {
			n.penalise(antispam.PeerSubject(from), antispam.RateExceeded)
			return pubsub.ValidationIgnore
		}
		r := n.validator.Validate(now, topic, m.GetData())
		// The adaptive difficulty counts every envelope that met the base,
		// including those ignored for this node's raised target: counting
		// only accepted ones would hide the flood the raise is holding off.
		if r.Verdict == gossip.Accept || (r.Verdict == gossip.Ignore && errors.Is(r.Err, gossip.ErrInsufficientWork)) {
			n.def.work.Observe(now, topic)
		}
		switch {
		case r.Verdict == gossip.Reject && !local:
			if mis, ok := antispam.ClassifyReject(r.Err); ok {
				n.penalise(antispam.PeerSubject(from), mis)
				n.penaliseSigner(r, mis)
			}
		case r.Verdict != gossip.Accept:
		case n.adm != nil && !n.adm.certified(now, r.Envelope.Sender):
			// The forwarder may not have our revocations yet: not its fault.
			r.Verdict, r.Err = gossip.Ignore, fmt.Errorf("%w: sender %s", ErrNotCertified, r.Envelope.Sender)
		case n.deviceBanned(r.Envelope.Sender):
			// The forwarder may not know of our ban: not its fault.
			r.Verdict, r.Err = gossip.Ignore, fmt.Errorf("%w: sender %s", antispam.ErrBanned, r.Envelope.Sender)
		case !local && !n.def.limiter.AllowSender(now, r.Envelope.Sender):
			// The signature is verified, so the device really sent this much.
			n.penalise(antispam.DeviceSubject(r.Envelope.Sender), antispam.SenderRateExceeded)
			r.Verdict, r.Err = gossip.Ignore, fmt.Errorf("%w: sender %s", antispam.ErrRateLimited, r.Envelope.Sender)
		default:
			n.runHook(from, &r, m.GetData())
			if r.Verdict == gossip.Accept {
				m.ValidatorData = r.Envelope
			}
		}
		n.observe(from, topic, r)
		return pubsubResult(r.Verdict)
	}
}

// penaliseSigner also scores the device that signed a rejected envelope,
// for the faults that are the signer's own choice: committing to too little
// work, or a timestamp far in the future. Those checks come before the
// signature's, so the signature is verified here first: only a device that
// really signed the bad content is blamed. The cost is bounded: the
// forwarder is scored for every such envelope and banned after a few.
func (n *Node) penaliseSigner(r gossip.Result, m antispam.Misbehaviour) {
	if r.Envelope == nil || (m != antispam.InsufficientWork && m != antispam.Future) {
		return
	}
	if identity.VerifyBIP340(r.Envelope.Sender, r.ID, r.Envelope.Signature) == nil {
		n.penalise(antispam.DeviceSubject(r.Envelope.Sender), m)
	}
}

func (n *Node) deviceBanned(d identity.DeviceID) bool {
	_, banned := n.def.ledger.Banned(n.clock(), antispam.DeviceSubject(d))
	return banned
}

func pubsubResult(v gossip.Verdict) pubsub.ValidationResult {
	switch v {
	case gossip.Accept:
		return pubsub.ValidationAccept
	case gossip.Ignore:
		return pubsub.ValidationIgnore
	default:
		return pubsub.ValidationReject
	}
}

// gater refuses connections to and from banned peers and devices, at dial
// time and once the remote key is known.
type gater struct{ n *Node }

func (g gater) InterceptPeerDial(p peer.ID) bool                        { return !g.n.peerBanned(p) }
func (g gater) InterceptAddrDial(p peer.ID, _ multiaddr.Multiaddr) bool { return !g.n.peerBanned(p) }
func (g gater) InterceptAccept(network.ConnMultiaddrs) bool             { return true }
func (g gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.n.peerBanned(p)
}
func (g gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// ledger returns the misbehaviour ledger, or ErrNotStarted.
func (n *Node) ledger() (*antispam.Ledger, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.started {
		return nil, ErrNotStarted
	}
	return n.def.ledger, nil
}

// Bans returns the bans in force, sorted by subject.
func (n *Node) Bans() ([]antispam.Ban, error) {
	l, err := n.ledger()
	if err != nil {
		return nil, err
	}
	return l.Bans(n.clock()), nil
}

// Scores returns the misbehaviour scores of the subjects the ledger
// tracks, highest first.
func (n *Node) Scores() ([]antispam.SubjectScore, error) {
	l, err := n.ledger()
	if err != nil {
		return nil, err
	}
	return l.Scores(n.clock()), nil
}

// Ban bans a peer or device for d (0: the ledger's BanDuration) and
// disconnects it. The ban persists in the data directory.
func (n *Node) Ban(s antispam.Subject, d time.Duration, reason string) error {
	l, err := n.ledger()
	if err != nil {
		return err
	}
	return l.Ban(n.clock(), s, d, reason)
}

// Unban lifts a ban and clears the subject's score.
func (n *Node) Unban(s antispam.Subject) error {
	l, err := n.ledger()
	if err != nil {
		return err
	}
	return l.Unban(s)
}

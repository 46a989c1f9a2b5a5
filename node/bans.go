package node

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// BanStoreFileName is the ban database's name inside the data directory.
const BanStoreFileName = "bans.db"

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
		if _, banned := n.def.ledger.Banned(now, n.deviceSubject(d)); banned {
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
	return cachedSubject(n.def.subjects, p, antispam.PeerSubject)
}

// deviceSubject is antispam.DeviceSubject with the device ID's bech32
// text cached: the receive path checks the sender's bans on every
// envelope, and encoding costs about 0.9 µs.
func (n *Node) deviceSubject(d identity.DeviceID) antispam.Subject {
	return cachedSubject(n.def.devices, d, antispam.DeviceSubject)
}

// cachedSubject returns name(k), from cache when it holds k.
func cachedSubject[K comparable](cache *lru.Cache[K, antispam.Subject], k K, name func(K) antispam.Subject) antispam.Subject {
	if s, ok := cache.Get(k); ok {
		return s
	}
	s := name(k)
	cache.Add(k, s)
	return s
}

// appScore is GossipSub's application-specific score (P5): minus the
// ledger's score, so the ledger's view steers mesh selection and gossip
// long before a ban.
func (n *Node) appScore(p peer.ID) float64 {
	return -float64(n.def.ledger.Score(n.clock(), n.peerSubject(p)))
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

package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/bitmesh/bitmesh/internal/atomicfile"
)

// Defences against eclipse by connection exhaustion (Heilman et al.,
// 2015): an attacker opens more connections to a node than its high
// watermark and waits for the connection manager to trim the honest ones.
// As Bitcoin Core answers it, slots an inbound peer cannot take:
//
//   - bootstrap peers and anchors (below) are protected from trimming, and
//     redialled whenever any of them is missing, not only when the node
//     has fewer than MinPeers connections (an attacker keeps it above);
//   - peers this node dialled itself are tagged outboundTagValue, above
//     anything a silent inbound peer earns;
//   - GossipSub tags each peer by its first deliveries and protects its
//     mesh peers (go-libp2p-pubsub's tag tracer);
//   - anchors: the peers with the most first deliveries when the node
//     stops (or every anchorSaveInterval) are kept in DATA/anchors.json
//     and dialled first at the next start, before any inbound peer can
//     fill the slots.

const (
	// AnchorsFileName is the anchors file inside the data directory.
	AnchorsFileName = "anchors.json"
	// maxAnchors is how many peers the anchors file keeps: a few, as
	// Core's two block-relay anchors, so that an attacker who was once a
	// good peer cannot fill every slot at the next start.
	maxAnchors = 4
	// maxAnchorsFile bounds the file read at start.
	maxAnchorsFile = 64 << 10
	// anchorSaveInterval is how often the anchors are written while the
	// node runs, so a power cut keeps recent ones.
	anchorSaveInterval = 2 * time.Minute

	tagProtected     = "bitmesh-protected"
	tagOutbound      = "bitmesh-outbound"
	outboundTagValue = 50
	// deliveryTagPrefix names GossipSub's per-topic first-delivery tags.
	deliveryTagPrefix = "pubsub-deliveries:"
)

// anchorsFile is the anchors file's content.
type anchorsFile struct {
	Version int          `json:"version"`
	Peers   []anchorPeer `json:"peers"`
}

type anchorPeer struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
}

// loadAnchors reads the anchors file; a missing file is no anchors, a bad
// one is an error naming it (the node then starts without anchors).
func loadAnchors(dir string) ([]peer.AddrInfo, error) {
	if dir == "" {
		return nil, nil
	}
	path := filepath.Join(dir, AnchorsFileName)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node: anchors %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxAnchorsFile+1))
	if err != nil {
		return nil, fmt.Errorf("node: anchors %s: %w", path, err)
	}
	if len(b) > maxAnchorsFile {
		return nil, fmt.Errorf("node: anchors %s: larger than %d bytes", path, maxAnchorsFile)
	}
	var af anchorsFile
	if err := json.Unmarshal(b, &af); err != nil || af.Version != 1 {
		return nil, fmt.Errorf("node: anchors %s: not a version 1 anchors file: %v", path, err)
	}
	var out []peer.AddrInfo
	for _, ap := range af.Peers[:min(len(af.Peers), maxAnchors)] {
		id, err := peer.Decode(ap.ID)
		if err != nil {
			return nil, fmt.Errorf("node: anchors %s: peer %q: %w", path, ap.ID, err)
		}
		pi := peer.AddrInfo{ID: id}
		for _, a := range ap.Addrs {
			if m, err := multiaddr.NewMultiaddr(a); err == nil {
				pi.Addrs = append(pi.Addrs, m)
			}
		}
		out = append(out, pi)
	}
	return out, nil
}

// anchorCandidate is a connected peer as rankAnchors sees it.
type anchorCandidate struct {
	id         peer.ID
	deliveries int // GossipSub's first-delivery tags, summed over topics
	outbound   bool
	misbehaved bool // any ledger score or ban
}

// rankAnchors picks up to maxAnchors peers worth dialling first next
// time: those that delivered messages first, most first, outbound before
// inbound on a tie; never a peer with a misbehaviour score.
func rankAnchors(cands []anchorCandidate) []peer.ID {
	cands = slices.DeleteFunc(slices.Clone(cands), func(c anchorCandidate) bool { return c.misbehaved || c.deliveries <= 0 })
	slices.SortStableFunc(cands, func(a, b anchorCandidate) int {
		if a.deliveries != b.deliveries {
			return b.deliveries - a.deliveries
		}
		switch {
		case a.outbound && !b.outbound:
			return -1
		case b.outbound && !a.outbound:
			return 1
		}
		return strings.Compare(string(a.id), string(b.id))
	})
	out := make([]peer.ID, 0, maxAnchors)
	for _, c := range cands[:min(len(cands), maxAnchors)] {
		out = append(out, c.id)
	}
	return out
}

// saveAnchors writes the current anchors atomically (temporary file,
// fsync, rename). It keeps the old file when no peer qualifies, so a
// node restarted while isolated keeps its last good anchors.
func (n *Node) saveAnchors() error {
	if n.cfg.DataDir == "" {
		return nil
	}
	cm := n.host.ConnManager()
	now := n.clock()
	var cands []anchorCandidate
	for _, p := range n.host.Network().Peers() {
		c := anchorCandidate{id: p, misbehaved: n.def.ledger.Score(now, n.peerSubject(p)) > 0 || n.peerBanned(p)}
		if info := cm.GetTagInfo(p); info != nil {
			for tag, v := range info.Tags {
				if strings.HasPrefix(tag, deliveryTagPrefix) {
					c.deliveries += v
				}
			}
			c.outbound = info.Tags[tagOutbound] > 0
		}
		cands = append(cands, c)
	}
	best := rankAnchors(cands)
	if len(best) == 0 {
		return nil
	}
	af := anchorsFile{Version: 1}
	for _, p := range best {
		ap := anchorPeer{ID: p.String()}
		for _, a := range n.host.Peerstore().Addrs(p) {
			ap.Addrs = append(ap.Addrs, a.String())
		}
		af.Peers = append(af.Peers, ap)
	}
	b, err := json.MarshalIndent(af, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Replace(filepath.Join(n.cfg.DataDir, AnchorsFileName), b, 0o600)
}

// protectedPeers are the bootstrap peers and anchors, in dialling order:
// anchors first.
func (n *Node) protectedPeers() []peer.AddrInfo {
	return append(slices.Clone(n.anchors), n.bootstrap...)
}

// startProtection tags and protects connections as they open. Called in
// Start with n.mu held, before any dial.
func (n *Node) startProtection() {
	protected := map[peer.ID]bool{}
	for _, pi := range n.protectedPeers() {
		protected[pi.ID] = true
	}
	cm := n.host.ConnManager()
	n.host.Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		p := c.RemotePeer()
		if protected[p] {
			cm.Protect(p, tagProtected)
		}
		if c.Stat().Direction == network.DirOutbound {
			cm.TagPeer(p, tagOutbound, outboundTagValue)
		}
	}})
	if n.cfg.DataDir != "" {
		n.spawn(n.anchorLoop)
	}
}

// anchorLoop saves the anchors every anchorSaveInterval until the node
// closes (Close saves them once more).
func (n *Node) anchorLoop(ctx context.Context) {
	t := time.NewTicker(anchorSaveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := n.saveAnchors(); err != nil {
				n.log.Warn("anchors not saved", "err", err)
			}
		}
	}
}

// missingProtected returns the protected peers that are not connected
// when fewer of them are than MinPeers (or all of them, if fewer exist).
func (n *Node) missingProtected() []peer.AddrInfo {
	all := n.protectedPeers()
	var missing []peer.AddrInfo
	for _, pi := range all {
		if n.host.Network().Connectedness(pi.ID) != network.Connected {
			missing = append(missing, pi)
		}
	}
	if len(all)-len(missing) >= min(n.cfg.MinPeers, len(all)) {
		return nil
	}
	return missing
}

package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/multiformats/go-multiaddr"
)

// parseBootstrap parses full multiaddrs (…/p2p/<peer id>), merging addresses
// of the same peer.
func parseBootstrap(addrs []string) ([]peer.AddrInfo, error) {
	mas := make([]multiaddr.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		ma, err := multiaddr.NewMultiaddr(a)
		if err != nil {
			return nil, fmt.Errorf("node: bootstrap peer %q: %w", a, err)
		}
		if _, err := peer.AddrInfoFromP2pAddr(ma); err != nil {
			return nil, fmt.Errorf("node: bootstrap peer %q: want a multiaddr ending in /p2p/<peer id>: %w", a, err)
		}
		mas = append(mas, ma)
	}
	return peer.AddrInfosFromP2pAddrs(mas...)
}

// dialAll dials every peer not yet connected, concurrently, each bounded by
// DialTimeout and by ctx, and waits for all. Failures are logged: a peer
// that is down now may be up at the next bootstrap round.
func (n *Node) dialAll(ctx context.Context, peers []peer.AddrInfo) {
	var wg sync.WaitGroup
	for _, pi := range peers {
		if pi.ID == n.host.ID() || n.host.Network().Connectedness(pi.ID) == network.Connected {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.dial(ctx, pi)
		}()
	}
	wg.Wait()
}

func (n *Node) dial(ctx context.Context, pi peer.AddrInfo) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.DialTimeout)
	defer cancel()
	if err := n.host.Connect(ctx, pi); err != nil {
		n.log.Warn("dial failed", "peer", pi.ID, "err", err)
		return
	}
	n.log.Debug("connected", "peer", pi.ID)
}

// bootstrapLoop redials the bootstrap peers and anchors whenever the node
// has fewer than MinPeers connections, so a device that lost its uplink
// rejoins by itself, and whenever fewer than MinPeers of those peers are
// connected (missingProtected).
func (n *Node) bootstrapLoop(ctx context.Context) {
	t := time.NewTicker(n.cfg.BootstrapInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if len(n.host.Network().Peers()) < n.cfg.MinPeers {
				n.dialAll(ctx, n.protectedPeers())
			} else if missing := n.missingProtected(); len(missing) > 0 {
				// Enough connections, too few of them to peers we chose:
				// the others may be an attacker's (protect.go).
				n.dialAll(ctx, missing)
			}
		}
	}
}

// mdnsNotifee dials LAN peers that mDNS finds. The node stays alive while
// the mDNS service runs, so dials run through spawn and stop at Close.
type mdnsNotifee struct{ n *Node }

func (m mdnsNotifee) HandlePeerFound(pi peer.AddrInfo) {
	n := m.n
	if pi.ID == n.self || n.host.Network().Connectedness(pi.ID) == network.Connected {
		return
	}
	n.goIfRunning(func(ctx context.Context) { n.dial(ctx, pi) })
}

// startMDNS runs with n.mu held.
func (n *Node) startMDNS() error {
	svc := mdns.NewMdnsService(n.host, "_bitmesh-"+n.cfg.Network+"._udp", mdnsNotifee{n})
	if err := svc.Start(); err != nil {
		return err
	}
	n.stopMDNS = svc.Close
	return nil
}

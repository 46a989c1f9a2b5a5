package meshlog

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/node/ext"
)

// History sync (PROTOCOL.md §18.6): a node that logs a topic follows the
// other logs of that topic. Each time it accepts a checkpoint of one, it
// fetches the entries it has not yet seen from the log's device, checks
// that they and the compact range before them hash to the checkpoint's
// root, and appends to its own log (and hands to Config.Recovered) every
// envelope it had missed. Entries are bound to the checkpoint, so no
// freshness rule applies: an envelope from before an outage is recovered
// with its own, old timestamp.

var rangeFactory = compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// syncFrom brings this node's copy of f's log up to checkpoint c.
func (m *MeshLog) syncFrom(ctx context.Context, h ext.Host, f *followed, c anchor.Checkpoint) error {
	_, _, topic, err := ParseOrigin(c.Origin)
	if err != nil {
		return err
	}
	tl, ok := m.logs[topic]
	if !ok {
		return nil // we do not log this topic
	}
	p, err := f.device.PeerID()
	if err != nil {
		return err
	}
	f.mu.Lock()
	start, rng := f.syncedSize, f.syncRange
	f.mu.Unlock()
	if c.Size <= start && rng != nil {
		return nil
	}
	if rng == nil || c.Size-start > m.cfg.SyncWindow {
		// First contact, or too far behind: take the last SyncWindow
		// entries, starting from the log's compact range before them.
		start = c.Size - min(c.Size, m.cfg.SyncWindow)
		resp, err := ask(ctx, h.Libp2p(), p, Request{Kind: ReqRange, Origin: c.Origin, A: start}, 1+32+1+maxProofHashes*32, ReadConsistencyResponse)
		if err != nil {
			return err
		}
		hashes := make([][]byte, len(resp.Proof))
		for i := range resp.Proof {
			hashes[i] = resp.Proof[i][:]
		}
		if rng, err = rangeFactory.NewRange(0, start, hashes); err != nil {
			m.blame(h, p, fmt.Errorf("%w: range of %d: %v", ErrMalformed, start, err))
			return err
		}
	} else {
		f.mu.Lock()
		rng, err = cloneRange(f.syncRange)
		f.mu.Unlock()
		if err != nil {
			return err
		}
	}
	var leaves [][]byte
	for next := start; next < c.Size; {
		n := min(c.Size-next, MaxEntriesPerRequest)
		got, err := ask(ctx, h.Libp2p(), p, Request{Kind: ReqEntries, Origin: c.Origin, A: next, B: n}, maxEntriesResponse, func(r io.Reader) ([][]byte, error) {
			return ReadBlobs(r, int(n), anchor.MaxLeafSize)
		})
		if err != nil {
			return err
		}
		if uint64(len(got)) != n {
			m.blame(h, p, fmt.Errorf("%w: %d entries for %d asked", ErrMalformed, len(got), n))
			return ErrMalformed
		}
		for _, leaf := range got {
			if err := rng.Append(rfc6962.DefaultHasher.HashLeaf(leaf), nil); err != nil {
				return err
			}
		}
		leaves = append(leaves, got...)
		next += n
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return err
	}
	if [32]byte(root) != c.Root {
		err := fmt.Errorf("%w: entries [%d, %d) of %q do not hash to the checkpoint root", ErrInconsistent, start, c.Size, c.Origin)
		m.blame(h, p, err)
		return err
	}
	recovered := 0
	for _, leaf := range leaves {
		ok, err := m.recover(h, tl, leaf)
		if err != nil {
			h.Logger().Info("history entry refused", "origin", c.Origin, "err", err)
			continue
		}
		if ok {
			recovered++
		}
	}
	f.mu.Lock()
	if c.Size > f.syncedSize || f.syncRange == nil {
		f.syncedSize, f.syncRange = c.Size, rng
	}
	f.mu.Unlock()
	if recovered > 0 {
		h.Logger().Info("recovered missed entries", "origin", c.Origin, "count", recovered)
	}
	return nil
}

func cloneRange(r *compact.Range) (*compact.Range, error) {
	return rangeFactory.NewRange(r.Begin(), r.End(), r.Hashes())
}

// recover appends one history entry to our log of its topic unless it is
// there already. The entry is a leaf of a checkpointed log, but only its
// own signature says who sent it, so that is checked first.
func (m *MeshLog) recover(h ext.Host, tl *topicLog, leaf []byte) (bool, error) {
	env, err := gossip.Decode(leaf)
	if err != nil {
		return false, err
	}
	if env.Topic != tl.topic || env.Network != gossip.NetworkFromName(h.NetworkName()) {
		return false, fmt.Errorf("%w: entry of %q on another topic or network", ErrWrongLog, tl.topic)
	}
	id := gossip.MessageID(leaf)
	tl.mu.Lock()
	_, have := tl.index[id]
	tl.mu.Unlock()
	if have {
		return false, nil
	}
	if err := identity.VerifyBIP340(env.Sender, [32]byte(id), env.Signature); err != nil {
		return false, err
	}
	i, err := tl.log.AppendOne(leaf)
	if err != nil {
		return false, err
	}
	tl.mu.Lock()
	if _, dup := tl.index[id]; !dup {
		tl.index[id] = i
	}
	tl.mu.Unlock()
	if m.cfg.Recovered != nil {
		m.cfg.Recovered(tl.topic, env)
	}
	return true, nil
}

// blame scores a peer that served history that does not add up.
func (m *MeshLog) blame(h ext.Host, p peer.ID, err error) {
	h.Logger().Warn("bad log history from peer", "peer", p, "err", err)
	h.Penalise(antispam.PeerSubject(p), antispam.Malformed)
}

// connNotifee asks each newly connected peer for its latest checkpoint of
// every topic we log, so that a node back from an outage catches up
// without waiting for the next checkpoint.
type connNotifee struct{ m *MeshLog }

func (n connNotifee) Connected(_ network.Network, c network.Conn) {
	h, err := n.m.running()
	if err != nil {
		return
	}
	p := c.RemotePeer()
	h.Go(func(ctx context.Context) { n.m.askLatest(ctx, h, p) })
}

func (connNotifee) Disconnected(network.Network, network.Conn) {}
func (connNotifee) Listen(network.Network, ma.Multiaddr)       {}
func (connNotifee) ListenClose(network.Network, ma.Multiaddr)  {}

func (m *MeshLog) askLatest(ctx context.Context, h ext.Host, p peer.ID) {
	device, err := identity.DeviceIDFromPeerID(p)
	if err != nil {
		return // not a bitmesh key
	}
	for _, topic := range m.cfg.Topics {
		origin := Origin(h.NetworkName(), device, topic)
		notes, err := ask(ctx, h.Libp2p(), p, Request{Kind: ReqLatest, Origin: origin}, 2+4+anchor.MaxSignedCheckpointSize+1, func(r io.Reader) ([][]byte, error) {
			return ReadBlobs(r, 1, anchor.MaxSignedCheckpointSize)
		})
		if err != nil || len(notes) != 1 {
			if err != nil && !errors.Is(err, ErrRemote) && ctx.Err() == nil {
				h.Logger().Debug("no latest checkpoint", "peer", p, "origin", origin, "err", err)
			}
			continue
		}
		c, err := anchor.OpenCheckpoint(notes[0], device, origin)
		if err != nil {
			m.blame(h, p, err)
			continue
		}
		m.follow(h, c, device, notes[0])
	}
}

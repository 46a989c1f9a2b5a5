package meshlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

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
// root, and only then hands each envelope it had missed to the node's
// receive path (ext.Host.Admit): the same checks as live gossip, with
// freshness judged against the time the checkpoint was accepted. What
// passes is appended to this node's log (and handed to Config.Recovered).
//
// Memory: an answer holds at most MaxEntriesResponseBytes of entries, and
// a sync keeps at most maxSyncHeld bytes of them until the root has been
// checked; beyond that it keeps only their leaf hashes and fetches those
// entries again afterwards, each checked against its hash, which the root
// now vouches for. At most maxConcurrentSyncs run at once.

var rangeFactory = compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

const (
	// maxSyncHeld bounds the entry bytes one sync holds before the root
	// is checked.
	maxSyncHeld = 4 << 20
	// maxConcurrentSyncs bounds the syncs (and so their memory) at once.
	maxConcurrentSyncs = 2
)

// syncFrom brings this node's copy of f's log up to checkpoint c, which it
// accepted at committedAt.
func (m *MeshLog) syncFrom(ctx context.Context, h ext.Host, f *followed, c anchor.Checkpoint, committedAt time.Time) error {
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
	select {
	case m.syncs <- struct{}{}:
		defer func() { <-m.syncs }()
	case <-ctx.Done():
		return ctx.Err()
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
	// Pass 1: every entry's leaf hash into the range; the entries
	// themselves only while they fit in maxSyncHeld.
	leafHashes := make([][32]byte, 0, c.Size-start)
	var held [][]byte
	heldBytes := 0
	err = fetchEntries(ctx, h, p, c.Origin, start, c.Size, func(leaf []byte) error {
		lh := rfc6962.DefaultHasher.HashLeaf(leaf)
		leafHashes = append(leafHashes, [32]byte(lh))
		if heldBytes+len(leaf) <= maxSyncHeld && len(held) == len(leafHashes)-1 {
			held = append(held, leaf)
			heldBytes += len(leaf)
		}
		return rng.Append(lh, nil)
	})
	if err != nil {
		if errors.Is(err, ErrMalformed) {
			m.blame(h, p, err)
		}
		return err
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
	// The root vouches for every leaf hash now. Admit what we held, then
	// fetch the rest again, each checked against its hash.
	var st syncStats
	for _, leaf := range held {
		st.add(m.recover(h, tl, p, leaf, committedAt))
	}
	if rest := start + uint64(len(held)); rest < c.Size {
		err = fetchEntries(ctx, h, p, c.Origin, rest, c.Size, func(leaf []byte) error {
			i := rest - start
			if [32]byte(rfc6962.DefaultHasher.HashLeaf(leaf)) != leafHashes[i] {
				return fmt.Errorf("%w: entry %d differs from the one first served", ErrInconsistent, rest)
			}
			rest++
			st.add(m.recover(h, tl, p, leaf, committedAt))
			return nil
		})
		if err != nil {
			if errors.Is(err, ErrMalformed) || errors.Is(err, ErrInconsistent) {
				m.blame(h, p, err)
			}
			return err
		}
	}
	f.mu.Lock()
	if c.Size > f.syncedSize || f.syncRange == nil {
		f.syncedSize, f.syncRange = c.Size, rng
	}
	f.mu.Unlock()
	if st.recovered > 0 || st.refused > 0 {
		h.Logger().Info("history synced", "origin", c.Origin, "recovered", st.recovered, "refused", st.refused, "first_refusal", st.firstErr)
	}
	return nil
}

// fetchEntries asks p for entries [from, to) of origin's log, as many
// requests as the answers' byte bound needs, and hands each to each. An
// answer that is empty, too long or not a list of entries fails with
// ErrMalformed.
func fetchEntries(ctx context.Context, h ext.Host, p peer.ID, origin string, from, to uint64, each func([]byte) error) error {
	for next := from; next < to; {
		n := min(to-next, MaxEntriesPerRequest)
		got, err := ask(ctx, h.Libp2p(), p, Request{Kind: ReqEntries, Origin: origin, A: next, B: n}, maxEntriesResponse, func(r io.Reader) ([][]byte, error) {
			return ReadBlobs(r, int(n), anchor.MaxLeafSize)
		})
		if err != nil {
			return err
		}
		if len(got) == 0 {
			return fmt.Errorf("%w: no entries for [%d, +%d)", ErrMalformed, next, n)
		}
		for _, leaf := range got {
			if err := each(leaf); err != nil {
				return err
			}
		}
		next += uint64(len(got))
	}
	return nil
}

func cloneRange(r *compact.Range) (*compact.Range, error) {
	return rangeFactory.NewRange(r.Begin(), r.End(), r.Hashes())
}

// syncStats counts what one sync did with the entries it fetched.
type syncStats struct {
	recovered, refused int
	firstErr           error
}

func (s *syncStats) add(ok bool, err error) {
	switch {
	case err != nil:
		s.refused++
		if s.firstErr == nil {
			s.firstErr = err
		}
	case ok:
		s.recovered++
	}
}

// recover hands one entry of a checkpointed log, served by p, to the
// node's receive path unless our log of the topic has it already. The
// path checks it as live gossip is checked (scoring p for what fails)
// and its Check hook, our appender, logs it.
func (m *MeshLog) recover(h ext.Host, tl *topicLog, p peer.ID, leaf []byte, committedAt time.Time) (bool, error) {
	id := gossip.MessageID(leaf)
	tl.mu.Lock()
	_, have := tl.index[id]
	tl.mu.Unlock()
	if have {
		return false, nil
	}
	env, err := h.Admit(p, tl.topic, leaf, committedAt)
	if err != nil {
		return false, err
	}
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
	if !waitAdmitted(ctx, h, device) {
		return // a peer the node refuses gets nothing into our logs
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
		m.follow(h, c, device, notes[0], h.Now())
	}
}

// admissionWait is how long askLatest waits for a new peer of a
// permissioned mesh to prove its certificate: the admission exchange runs
// when the connection opens, alongside askLatest.
const admissionWait = 10 * time.Second

// waitAdmitted reports whether device is in good standing, waiting up to
// admissionWait for a pending admission.
func waitAdmitted(ctx context.Context, h ext.Host, device identity.DeviceID) bool {
	ctx, cancel := context.WithTimeout(ctx, admissionWait)
	defer cancel()
	t := time.NewTicker(admissionWait / 40)
	defer t.Stop()
	for h.Standing(device) == ext.Refused {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

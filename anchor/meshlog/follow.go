package meshlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/node/ext"
	"github.com/libp2p/go-libp2p/core/peer"
)

// followed is what this node knows of another device's log.
type followed struct {
	origin string
	device identity.DeviceID

	mu       sync.Mutex        // guards the fields below
	latest   anchor.Checkpoint // newest checkpoint checked consistent
	note     []byte            // its signed note
	sizes    map[uint64][]byte // recent signed notes by size, for equivocation
	order    []uint64          // sizes in arrival order, to bound the map
	checking bool              // a consistency check is under way
	banned   bool              // equivocation seen: ignore it from now on

	syncedSize uint64         // entries of the log this node has synced
	syncRange  *compact.Range // their compact range; nil before the first sync
}

// peekOrigin reads the origin of a signed checkpoint without verifying it,
// and splits it.
func peekOrigin(signed []byte) (c anchor.Checkpoint, network string, device identity.DeviceID, err error) {
	if len(signed) > anchor.MaxSignedCheckpointSize {
		return c, "", device, fmt.Errorf("%w: note of %d bytes", ErrMalformed, len(signed))
	}
	_, err = note.Open(signed, note.VerifierList())
	var u *note.UnverifiedNoteError
	if !errors.As(err, &u) {
		return c, "", device, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if c, err = anchor.ParseCheckpoint([]byte(u.Note.Text)); err != nil {
		return c, "", device, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	network, device, _, err = ParseOrigin(c.Origin)
	return c, network, device, err
}

// check is the Topic hook's validation: after the node has verified the
// envelope, the message inside must be well formed, about a log of this
// network, and signed as its kind requires. Failures are the sender's. A
// checkpoint of a log this node has no reason to follow must also fit the
// stranger budget (see admitStranger).
func (m *MeshLog) check(from peer.ID, env *gossip.Envelope, _ []byte) error {
	h, err := m.running()
	if err != nil {
		return fmt.Errorf("%w: %v", ext.ErrIgnore, err)
	}
	msg, err := DecodeMessage(env.Payload)
	if err != nil {
		return ext.Reject(antispam.Malformed, err)
	}
	first := msg.Note
	if msg.Kind == KindEquivocation {
		first = msg.Pair.A
	}
	c, network, device, err := peekOrigin(first)
	if err != nil {
		return ext.Reject(antispam.Malformed, err)
	}
	if network != h.NetworkName() {
		return ext.Reject(antispam.WrongNetwork, fmt.Errorf("%w: origin %q", ErrWrongLog, c.Origin))
	}
	switch msg.Kind {
	case KindCheckpoint:
		if device != env.Sender {
			return ext.Reject(antispam.BadSignature, fmt.Errorf("%w: %s sent the checkpoint of %q", ErrWrongLog, env.Sender, c.Origin))
		}
		if _, err := anchor.OpenCheckpoint(msg.Note, device, c.Origin); err != nil {
			return ext.Reject(antispam.BadSignature, err)
		}
		return m.admitStranger(h, from, c.Origin, device)
	case KindCosigned:
		_, cosigners, err := anchor.VerifyCosignatures(msg.Note, device, []identity.DeviceID{env.Sender}, c.Origin)
		if err != nil {
			return ext.Reject(antispam.BadSignature, err)
		}
		if len(cosigners) != 1 {
			return ext.Reject(antispam.BadSignature, fmt.Errorf("%w: not cosigned by its sender %s", anchor.ErrNotEnoughCosignatures, env.Sender))
		}
	case KindEquivocation:
		if err := msg.Pair.Verify(device, c.Origin); err != nil {
			return ext.Reject(antispam.Malformed, err)
		}
	}
	return nil
}

// Followed logs and the stranger budget. A node follows (checks, witnesses,
// convicts) the logs it has a reason to: those of the topics it logs
// itself, the ones in Config.WitnessOrigins, and in a permissioned mesh
// those of certified devices. Any other log is a stranger: anyone can
// make one with a fresh key per checkpoint, so strangers new to this node
// are admitted at StrangerRate per forwarding peer and in total; beyond
// the peer's budget its checkpoints are ignored and the peer is scored
// RateExceeded per excess checkpoint, beyond the total budget they are
// only ignored. Honest nodes forward only what they accepted, so an
// honest neighbour stays within a per-peer budget equal to the total.
// The followed table keeps the maxFollowedLogs most recently active logs.

// reason reports whether this node follows origin's log whatever the
// budget.
func (m *MeshLog) reason(h ext.Host, origin string, device identity.DeviceID) bool {
	if device == h.Key().DeviceID() || slices.Contains(m.cfg.WitnessOrigins, origin) {
		return true
	}
	if _, _, topic, err := ParseOrigin(origin); err == nil && m.logs[topic] != nil {
		return true
	}
	return h.Standing(device) == ext.Certified
}

// admitStranger is check's verdict on a valid checkpoint from forwarder
// from.
func (m *MeshLog) admitStranger(h ext.Host, from peer.ID, origin string, device identity.DeviceID) error {
	if m.seen.Contains(origin) || m.reason(h, origin, device) {
		return nil
	}
	now := h.Now()
	if from != h.Libp2p().ID() && !m.strangers.AllowPeer(now, from) {
		m.strangersRefused.Add(1)
		return ext.Reject(antispam.RateExceeded, fmt.Errorf("%w: too many new logs from peer %s", ErrBudget, from))
	}
	if !m.strangersTotal.AllowN(now, 1) {
		m.strangersRefused.Add(1)
		return fmt.Errorf("%w: %w: too many new logs", ext.ErrIgnore, ErrBudget)
	}
	return nil
}

// accepted acts on a checked Topic message.
func (m *MeshLog) accepted(_ peer.ID, env *gossip.Envelope, _ []byte) {
	h, err := m.running()
	if err != nil {
		return
	}
	msg, err := DecodeMessage(env.Payload)
	if err != nil {
		return // check passed it: cannot happen
	}
	first := msg.Note
	if msg.Kind == KindEquivocation {
		first = msg.Pair.A
	}
	c, _, device, err := peekOrigin(first)
	if err != nil {
		return
	}
	switch msg.Kind {
	case KindCheckpoint:
		if device == h.Key().DeviceID() {
			return // our own, echoed back through validation
		}
		m.follow(h, c, device, msg.Note, env.Time)
	case KindCosigned:
		if tl, ok := m.byOrigin[c.Origin]; ok && device == h.Key().DeviceID() {
			if err := m.addCosignature(tl, c, msg.Note, env.Sender); err != nil {
				h.Logger().Debug("cosignature not merged", "origin", c.Origin, "witness", env.Sender, "err", err)
			}
		}
	case KindEquivocation:
		m.convict(h, c.Origin, device, msg.Pair, false)
	}
}

// followedLog returns (creating) the state of another device's log; the
// least recently active log is forgotten when the table is full.
func (m *MeshLog) followedLog(origin string, device identity.DeviceID) *followed {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.seen.Get(origin)
	if !ok {
		f = &followed{origin: origin, device: device, sizes: make(map[uint64][]byte)}
		m.seen.Add(origin, f)
	}
	return f
}

// follow records another log's checkpoint: a second root for a size seen
// before is equivocation; a larger size is checked for consistency with
// the newest checked checkpoint (and cosigned by a witness) in the
// background. at is when this node accepted c.
func (m *MeshLog) follow(h ext.Host, c anchor.Checkpoint, device identity.DeviceID, signed []byte, at time.Time) {
	f := m.followedLog(c.Origin, device)
	f.mu.Lock()
	if f.banned {
		f.mu.Unlock()
		return
	}
	if prev, ok := f.sizes[c.Size]; ok {
		f.mu.Unlock()
		pc, err := anchor.OpenCheckpoint(prev, device, c.Origin)
		if err == nil && pc.Root != c.Root {
			m.convict(h, c.Origin, device, anchor.Equivocation{A: prev, B: signed}, true)
		}
		return
	}
	f.sizes[c.Size] = signed
	f.order = append(f.order, c.Size)
	if len(f.order) > maxSeenSizes {
		delete(f.sizes, f.order[0])
		f.order = f.order[1:]
	}
	start := f.note == nil || (c.Size > f.latest.Size && !f.checking)
	old, oldNote := f.latest, f.note
	if start {
		f.checking = true
	}
	f.mu.Unlock()
	if !start {
		return
	}
	h.Go(func(ctx context.Context) {
		err := m.checkNewer(ctx, h, f, old, oldNote, c, signed, at)
		f.mu.Lock()
		f.checking = false
		f.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			h.Logger().Info("checkpoint not witnessed", "origin", c.Origin, "size", c.Size, "err", err)
		}
	})
}

// checkNewer verifies that checkpoint c extends old (fetching a
// consistency proof from the log's device), records it, and cosigns it if
// this node witnesses. A proof that the log's tree at old's size differs
// from old convicts the log.
func (m *MeshLog) checkNewer(ctx context.Context, h ext.Host, f *followed, old anchor.Checkpoint, oldNote []byte, c anchor.Checkpoint, signed []byte, at time.Time) error {
	if oldNote != nil {
		p, err := f.device.PeerID()
		if err != nil {
			return err
		}
		resp, err := fetchConsistency(ctx, h.Libp2p(), p, Request{Origin: c.Origin, A: old.Size, B: c.Size})
		if err != nil {
			return err
		}
		if err := verifyConsistency(old.Size, c.Size, resp.Root1, c.Root, resp.Proof); err != nil {
			return err // the answer does not lead to c: the peer's fault, not c's
		}
		if resp.Root1 != old.Root {
			// The log proved that its tree c has a prefix of old's size
			// other than the one it signed in old: a fork. The proof
			// convinces this node; the evidence others can check without
			// asking the log is two notes of one size (see PROTOCOL §18.4).
			m.convict(h, c.Origin, f.device, anchor.Equivocation{A: oldNote, B: signed}, false)
			return fmt.Errorf("%w: tree of size %d forks from checkpoint %d", ErrInconsistent, c.Size, old.Size)
		}
	}
	f.mu.Lock()
	if c.Size > f.latest.Size || f.note == nil {
		f.latest, f.note = c, signed
	}
	f.mu.Unlock()
	if err := m.syncFrom(ctx, h, f, c, at); err != nil && ctx.Err() == nil {
		h.Logger().Info("history sync failed", "origin", c.Origin, "err", err)
	}
	if !m.cfg.Witness {
		return nil
	}
	if !m.cosigns.AllowN(h.Now(), 1) {
		// Neighbours limit each device's rate on Topic too: a witness that
		// cosigned every checkpoint of a flood would be banned by them.
		m.cosignsSkipped.Add(1)
		return fmt.Errorf("%w: cosignature rate", ErrBudget)
	}
	cosigned, err := anchor.Cosign(signed, h.Key(), h.Now())
	if err != nil {
		return err
	}
	payload, err := Message{Kind: KindCosigned, Note: cosigned}.Encode()
	if err != nil {
		return err
	}
	_, err = h.Publish(ctx, Topic, payload)
	return err
}

// convict bans a log's device for equivocation and, when this node found
// the evidence itself and the evidence is self-contained, gossips it.
func (m *MeshLog) convict(h ext.Host, origin string, device identity.DeviceID, e anchor.Equivocation, gossipIt bool) {
	f := m.followedLog(origin, device)
	f.mu.Lock()
	already := f.banned
	f.banned = true
	f.mu.Unlock()
	if already {
		return
	}
	h.Logger().Warn("log equivocation: banning its device", "origin", origin, "device", device)
	h.Penalise(antispam.DeviceSubject(device), antispam.Equivocation)
	if p, err := device.PeerID(); err == nil {
		h.Penalise(antispam.PeerSubject(p), antispam.Equivocation)
	}
	if !gossipIt || e.Verify(device, origin) != nil {
		return
	}
	payload, err := Message{Kind: KindEquivocation, Pair: e}.Encode()
	if err != nil {
		return
	}
	h.Go(func(ctx context.Context) {
		if _, err := h.Publish(ctx, Topic, payload); err != nil && ctx.Err() == nil {
			h.Logger().Warn("equivocation evidence not published", "origin", origin, "err", err)
		}
	})
}

// Convicted reports whether this node has seen origin's log equivocate.
func (m *MeshLog) Convicted(origin string) bool {
	f, ok := m.seen.Peek(origin)
	if !ok {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.banned
}

package meshlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
)

// checkpointLoop signs a checkpoint of each grown log every
// CheckpointInterval, and sooner when a log grows by CheckpointEvery.
func (m *MeshLog) checkpointLoop(ctx context.Context) {
	t := time.NewTicker(m.cfg.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.kick:
		}
		for _, topic := range m.cfg.Topics {
			if _, err := m.Checkpoint(ctx, topic); err != nil && !errors.Is(err, ErrClosed) && ctx.Err() == nil {
				m.logger().Warn("checkpoint failed", "topic", topic, "err", err)
			}
		}
		m.anchorDue(ctx)
	}
}

// anchorDue anchors the newest checkpoint of every log once per
// AnchorInterval, and tries to complete pending anchor proofs. The
// interval starts at an attempt: a tick with no checkpoint to anchor (a
// log still empty) does not use up the slot.
func (m *MeshLog) anchorDue(ctx context.Context) {
	if len(m.cfg.Anchorers) == 0 {
		return
	}
	h, err := m.running()
	if err != nil {
		return
	}
	m.mu.Lock()
	due := m.anchored.IsZero() || h.Now().Sub(m.anchored) >= m.cfg.AnchorInterval
	m.mu.Unlock()
	attempted := false
	defer func() {
		if attempted {
			m.mu.Lock()
			m.anchored = h.Now()
			m.mu.Unlock()
		}
	}()
	for _, topic := range m.cfg.Topics {
		tl := m.logs[topic]
		tl.mu.Lock()
		todo := slices.Clone(tl.checkpoints)
		tl.mu.Unlock()
		for i, own := range todo {
			newest := i == len(todo)-1
			for _, a := range m.cfg.Anchorers {
				have := slices.IndexFunc(own.anchors, func(p anchor.AnchorProof) bool { return p.Kind == a.Kind() })
				var p anchor.AnchorProof
				switch {
				case have >= 0 && own.anchors[have].Pending:
					p, err = a.Upgrade(ctx, own.anchors[have])
				case have < 0 && newest && due:
					attempted = true
					p, err = a.Anchor(ctx, own.c)
				default:
					continue
				}
				if err != nil && !errors.Is(err, anchor.ErrAnchorPending) {
					h.Logger().Warn("anchoring failed", "kind", a.Kind(), "origin", own.c.Origin, "size", own.c.Size, "err", err)
					continue
				}
				if err := tl.setAnchor(own.c.Size, p); err != nil && !errors.Is(err, anchor.ErrStoreClosed) {
					h.Logger().Warn("anchor proof not stored", "kind", a.Kind(), "origin", own.c.Origin, "size", own.c.Size, "err", err)
				}
			}
		}
	}
}

// setAnchor records an anchor proof of the checkpoint of size, and stores
// it unless it is the one already recorded (a pending proof that did not
// change).
func (tl *topicLog) setAnchor(size uint64, p anchor.AnchorProof) error {
	tl.persistMu.Lock()
	defer tl.persistMu.Unlock()
	tl.mu.Lock()
	i := slices.IndexFunc(tl.checkpoints, func(own ownCheckpoint) bool { return own.c.Size == size })
	if i < 0 {
		tl.mu.Unlock()
		return nil
	}
	own := &tl.checkpoints[i]
	if slices.ContainsFunc(own.anchors, func(q anchor.AnchorProof) bool { return sameProof(p, q) }) {
		tl.mu.Unlock()
		return nil
	}
	// A new slice: receipts and anchorDue hold copies of the old one.
	next := []anchor.AnchorProof{p}
	for _, q := range own.anchors {
		if q.Kind != p.Kind {
			next = append(next, q)
		}
	}
	own.anchors = next
	record := *own
	var dropped []ownCheckpoint
	tl.checkpoints, dropped = retain(tl.checkpoints)
	tl.mu.Unlock()
	if err := tl.saveCheckpoint(record); err != nil {
		return err
	}
	return tl.dropCheckpoints(dropped)
}

func sameProof(p, q anchor.AnchorProof) bool {
	return p.Kind == q.Kind && p.Digest == q.Digest && p.Pending == q.Pending && bytes.Equal(p.Proof, q.Proof)
}

// Checkpoint signs a checkpoint of topic's log if it grew since the last
// one, publishes it on Topic, and returns the newest signed checkpoint
// (with the cosignatures gathered so far).
func (m *MeshLog) Checkpoint(ctx context.Context, topic string) ([]byte, error) {
	h, err := m.running()
	if err != nil {
		return nil, err
	}
	tl, ok := m.logs[topic]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, topic)
	}
	size := tl.log.Size()
	tl.mu.Lock()
	if n := len(tl.checkpoints); n > 0 && tl.checkpoints[n-1].c.Size >= size {
		latest := tl.checkpoints[n-1].note
		tl.mu.Unlock()
		return latest, nil
	}
	tl.mu.Unlock()
	if size == 0 {
		return nil, fmt.Errorf("%w: log %q is empty", ErrNoCheckpoint, topic)
	}
	root, err := tl.log.RootAt(size)
	if err != nil {
		return nil, err
	}
	c := anchor.Checkpoint{Origin: tl.origin, Size: size, Root: root}
	signed, err := anchor.SignCheckpoint(c, h.Key())
	if err != nil {
		return nil, err
	}
	if latest, err := tl.addCheckpoint(ownCheckpoint{c: c, note: signed, signedAt: h.Now()}); latest != nil || err != nil {
		return latest, err
	}
	payload, err := Message{Kind: KindCheckpoint, Note: signed}.Encode()
	if err != nil {
		return nil, err
	}
	if len(m.cfg.Anchorers) > 0 {
		select { // let the loop see whether this one is due for anchoring
		case m.kick <- struct{}{}:
		default:
		}
	}
	if _, err := h.Publish(ctx, Topic, payload); err != nil {
		return signed, fmt.Errorf("meshlog: publishing checkpoint: %w", err)
	}
	return signed, nil
}

// addCheckpoint stores a newly signed checkpoint, then adds it to
// tl.checkpoints: one that is not durable is never published, so a
// restart cannot forget a tree the mesh has seen signed. If a concurrent
// call added one at least as large first, it returns that one's note
// instead.
func (tl *topicLog) addCheckpoint(own ownCheckpoint) (latest []byte, err error) {
	tl.persistMu.Lock()
	defer tl.persistMu.Unlock()
	tl.mu.Lock()
	if n := len(tl.checkpoints); n > 0 && tl.checkpoints[n-1].c.Size >= own.c.Size {
		latest := tl.checkpoints[n-1].note
		tl.mu.Unlock()
		return latest, nil
	}
	tl.mu.Unlock()
	if err := tl.saveCheckpoint(own); err != nil {
		return nil, err
	}
	tl.mu.Lock()
	var dropped []ownCheckpoint
	tl.checkpoints, dropped = retain(append(tl.checkpoints, own))
	tl.mu.Unlock()
	if err := tl.dropCheckpoints(dropped); err != nil {
		// Left over records are dropped again at the next start.
		return nil, fmt.Errorf("meshlog: deleting old checkpoints of %q: %w", tl.topic, err)
	}
	return nil, nil
}

// addCosignature merges a witness's cosignature into the matching own
// checkpoint and stores it. cosigned was verified by check: it carries
// this log's signature and witness's cosignature over one of our
// checkpoints.
func (m *MeshLog) addCosignature(tl *topicLog, c anchor.Checkpoint, cosigned []byte, witness identity.DeviceID) error {
	tl.persistMu.Lock()
	defer tl.persistMu.Unlock()
	tl.mu.Lock()
	i := slices.IndexFunc(tl.checkpoints, func(own ownCheckpoint) bool { return own.c.Size == c.Size && own.c.Root == c.Root })
	if i < 0 {
		tl.mu.Unlock()
		return nil // a checkpoint too old to keep, or one we never signed: check caught forgeries
	}
	own := &tl.checkpoints[i]
	if slices.Contains(own.cosigners, witness) {
		tl.mu.Unlock()
		return nil
	}
	merged, err := mergeSignature(own.note, cosigned, anchor.WitnessName(witness))
	if err != nil {
		tl.mu.Unlock()
		return err
	}
	own.note = merged
	// A new slice: Logs and receipts may hold the old one.
	own.cosigners = append(slices.Clip(own.cosigners), witness)
	record := *own
	tl.mu.Unlock()
	return tl.saveCheckpoint(record)
}

// mergeSignature appends the signature line named name from other to
// signed; both notes carry the same text.
func mergeSignature(signed, other []byte, name string) ([]byte, error) {
	open := func(b []byte) (*note.Note, error) {
		_, err := note.Open(b, note.VerifierList())
		var u *note.UnverifiedNoteError
		if !errors.As(err, &u) {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		return u.Note, nil
	}
	mine, err := open(signed)
	if err != nil {
		return nil, err
	}
	theirs, err := open(other)
	if err != nil {
		return nil, err
	}
	if mine.Text != theirs.Text {
		return nil, fmt.Errorf("%w: cosigned another checkpoint", ErrMalformed)
	}
	for _, s := range theirs.UnverifiedSigs {
		if s.Name == name {
			mine.UnverifiedSigs = append(mine.UnverifiedSigs, s)
			out, err := note.Sign(mine)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
			}
			if len(out) > anchor.MaxSignedCheckpointSize {
				return signed, nil // full: keep the cosignatures we have
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("%w: no signature by %s", ErrMalformed, name)
}

// consistency answers a ReqConsistency (root at A and the proof from A to
// B) or a ReqRange (the compact range hashes of the first A leaves) about
// one of our logs.
func (m *MeshLog) consistency(req Request) (ConsistencyResponse, error) {
	tl, err := m.ownLog(req.Origin)
	if err != nil {
		return ConsistencyResponse{}, err
	}
	var hashes [][]byte
	var resp ConsistencyResponse
	if req.Kind == ReqRange {
		hashes, err = tl.log.RangeHashes(req.A)
	} else {
		if resp.Root1, err = tl.log.RootAt(req.A); err != nil {
			return ConsistencyResponse{}, err
		}
		hashes, err = tl.log.ConsistencyProof(req.A, req.B)
	}
	if err != nil {
		return ConsistencyResponse{}, err
	}
	resp.Proof = make([][32]byte, len(hashes))
	for i, h := range hashes {
		copy(resp.Proof[i][:], h)
	}
	return resp, nil
}

// blobs answers a ReqEntries (envelopes [A, A+B), as many as fit in
// MaxEntriesResponseBytes and at least one) or a ReqLatest (the
// newest signed checkpoint, cosignatures merged) about one of our logs.
func (m *MeshLog) blobs(req Request) ([][]byte, error) {
	tl, err := m.ownLog(req.Origin)
	if err != nil {
		return nil, err
	}
	if req.Kind == ReqLatest {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		if n := len(tl.checkpoints); n > 0 {
			return [][]byte{tl.checkpoints[n-1].note}, nil
		}
		return nil, fmt.Errorf("%w: no checkpoint of %q yet", ErrNoCheckpoint, req.Origin)
	}
	if req.B == 0 || req.B > MaxEntriesPerRequest {
		return nil, fmt.Errorf("%w: %d entries asked, 1..%d allowed", ErrMalformed, req.B, MaxEntriesPerRequest)
	}
	size := tl.log.Size()
	if req.A >= size || req.B > size-req.A {
		return nil, fmt.Errorf("%w: entries [%d, +%d) of %d", ErrNotLogged, req.A, req.B, size)
	}
	// One leaf at a time, so an answer never holds more than
	// MaxEntriesResponseBytes plus the leaf that did not fit.
	var out [][]byte
	total := 0
	for i := req.A; i < req.A+req.B; i++ {
		leaf, err := tl.log.Leaf(i)
		if err != nil {
			return nil, err
		}
		if len(out) > 0 && total+len(leaf) > MaxEntriesResponseBytes {
			break
		}
		out = append(out, leaf)
		total += len(leaf)
	}
	return out, nil
}

// ownLog returns the log of ours with that origin.
func (m *MeshLog) ownLog(origin string) (*topicLog, error) {
	if _, err := m.running(); err != nil {
		return nil, err
	}
	tl, ok := m.byOrigin[origin]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, origin)
	}
	return tl, nil
}

// verifyConsistency checks resp proves the tree (size1, root1) a prefix of
// (size2, root2).
func verifyConsistency(size1, size2 uint64, root1, root2 [32]byte, p [][32]byte) error {
	hashes := make([][]byte, len(p))
	for i := range p {
		hashes[i] = p[i][:]
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size2, hashes, root1[:], root2[:]); err != nil {
		return fmt.Errorf("%w: %v", ErrInconsistent, err)
	}
	return nil
}

// Receipt returns a self-contained receipt for the envelope id logged on
// topic, against the newest checkpoint, which covers every earlier entry.
func (m *MeshLog) Receipt(topic string, id gossip.ID) (anchor.Receipt, error) {
	if _, err := m.running(); err != nil {
		return anchor.Receipt{}, err
	}
	tl, ok := m.logs[topic]
	if !ok {
		return anchor.Receipt{}, fmt.Errorf("%w: %q", ErrUnknownTopic, topic)
	}
	tl.mu.Lock()
	i, ok := tl.index[id]
	latest := tl.receiptCheckpoint(i)
	tl.mu.Unlock()
	if !ok {
		return anchor.Receipt{}, fmt.Errorf("%w: %x on %q", ErrNotLogged, id, topic)
	}
	if latest.c.Size <= i {
		return anchor.Receipt{}, fmt.Errorf("%w: entry %d, checkpoint size %d", ErrNoCheckpoint, i, latest.c.Size)
	}
	leaf, err := tl.log.Leaf(i)
	if err != nil {
		return anchor.Receipt{}, err
	}
	hashes, err := tl.log.InclusionProof(i, latest.c.Size)
	if err != nil {
		return anchor.Receipt{}, err
	}
	r := anchor.Receipt{Envelope: leaf, LeafIndex: i, Checkpoint: latest.note, Proof: make([][32]byte, len(hashes)), Anchors: latest.anchors}
	for j, h := range hashes {
		copy(r.Proof[j][:], h)
	}
	return r, nil
}

// receiptCheckpoint picks the checkpoint for a receipt of entry i: the
// oldest covering it with a confirmed anchor, else the newest (which has
// the most entries and, usually, cosignatures). Callers hold tl.mu.
func (tl *topicLog) receiptCheckpoint(i uint64) ownCheckpoint {
	for _, own := range tl.checkpoints {
		if own.c.Size > i && slices.ContainsFunc(own.anchors, func(p anchor.AnchorProof) bool { return !p.Pending }) {
			return own
		}
	}
	if n := len(tl.checkpoints); n > 0 {
		return tl.checkpoints[n-1]
	}
	return ownCheckpoint{}
}

// LogInfo describes one of this node's logs.
type LogInfo struct {
	Topic      string              `json:"topic"`
	Origin     string              `json:"origin"`
	Size       uint64              `json:"size"`
	Checkpoint uint64              `json:"checkpoint_size"` // size of the newest signed checkpoint
	Cosigners  []identity.DeviceID `json:"cosigners"`       // witnesses of the newest checkpoint
	// Anchored is the size of the newest checkpoint with a confirmed
	// anchor (0: none yet); Pending lists anchor kinds awaiting
	// confirmation.
	Anchored uint64   `json:"anchored_size"`
	Pending  []string `json:"anchors_pending"`
	// Bytes is the entries' size; Refused counts the envelopes the log
	// refused, by reason (device-quota, peer-quota, topic-quota,
	// log-full, store-error).
	Bytes   uint64            `json:"bytes"`
	Refused map[string]uint64 `json:"refused"`
	// CheckpointTime is when this node signed its newest checkpoint
	// (zero if it was signed before the node started); AnchoredBy is,
	// per anchor kind, the size of the newest checkpoint with a
	// confirmed anchor of that kind.
	CheckpointTime time.Time         `json:"checkpoint_time,omitzero"`
	AnchoredBy     map[string]uint64 `json:"anchored_by"`
}

// Logs describes this node's logs, in Config.Topics order.
func (m *MeshLog) Logs() []LogInfo {
	if _, err := m.running(); err != nil {
		return nil
	}
	out := make([]LogInfo, 0, len(m.cfg.Topics))
	for _, topic := range m.cfg.Topics {
		tl := m.logs[topic]
		info := LogInfo{Topic: topic, Origin: tl.origin, Size: tl.log.Size(), Cosigners: []identity.DeviceID{}, Refused: tl.quota.refusals()}
		tl.mu.Lock()
		info.Bytes = tl.bytes
		if n := len(tl.checkpoints); n > 0 {
			info.Checkpoint = tl.checkpoints[n-1].c.Size
			info.Cosigners = append(info.Cosigners, tl.checkpoints[n-1].cosigners...)
			info.CheckpointTime = tl.checkpoints[n-1].signedAt
		}
		info.Pending = []string{}
		info.AnchoredBy = map[string]uint64{}
		for _, own := range tl.checkpoints {
			for _, a := range own.anchors {
				if a.Pending {
					info.Pending = append(info.Pending, fmt.Sprintf("%s@%d", a.Kind, own.c.Size))
				} else {
					info.Anchored = max(info.Anchored, own.c.Size)
					info.AnchoredBy[a.Kind] = max(info.AnchoredBy[a.Kind], own.c.Size)
				}
			}
		}
		tl.mu.Unlock()
		out = append(out, info)
	}
	return out
}

// InclusionProof returns the proof of entry index of topic's log in the
// tree of the newest checkpoint, with that checkpoint.
func (m *MeshLog) InclusionProof(topic string, index uint64) (anchor.Receipt, error) {
	tl, ok := m.logs[topic]
	if !ok {
		return anchor.Receipt{}, fmt.Errorf("%w: %q", ErrUnknownTopic, topic)
	}
	if index >= tl.log.Size() {
		return anchor.Receipt{}, fmt.Errorf("%w: entry %d of %d", ErrNotLogged, index, tl.log.Size())
	}
	leaf, err := tl.log.Leaf(index)
	if err != nil {
		return anchor.Receipt{}, err
	}
	return m.Receipt(topic, gossip.MessageID(leaf))
}

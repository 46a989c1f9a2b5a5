package meshlog

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/identity"
)

// Own checkpoints are kept in the log's store (anchor.MetaStore), one
// record per checkpoint under checkpointKey(size), so that after a restart
// the node neither forgets cosignatures and anchor proofs that took hours
// or money to get, nor signs a second tree for a size it already signed.

// checkpointKeyPrefix starts every checkpoint record's key; the size
// follows as 16 hex digits, so keys sort by size.
const checkpointKeyPrefix = "checkpoint/"

func checkpointKey(size uint64) string {
	return fmt.Sprintf("%s%016x", checkpointKeyPrefix, size)
}

// Checkpoint record encoding, version 1 (integers are uvarints):
//
//	version (1 byte) | len(note) note | count(cosigners) 32-byte IDs |
//	count(anchors) { len(kind) kind | digest (32 bytes) | pending (0/1) | len(proof) proof }
const (
	checkpointRecordVersion = 1
	// maxRecordCosigners bounds the cosigner list: a cosignature line
	// takes about 100 bytes of a note of at most MaxSignedCheckpointSize.
	maxRecordCosigners = anchor.MaxSignedCheckpointSize / 64
	// maxRecordAnchors bounds the anchor proofs, one per kind.
	maxRecordAnchors = 8
	maxAnchorKindLen = 64
)

// checkpointRecord is the stored form of an ownCheckpoint; its checkpoint
// body is read back from the signed note.
type checkpointRecord struct {
	note      []byte
	cosigners []identity.DeviceID
	anchors   []anchor.AnchorProof
}

func encodeCheckpointRecord(own ownCheckpoint) []byte {
	b := []byte{checkpointRecordVersion}
	b = appendBytes(b, own.note)
	b = binary.AppendUvarint(b, uint64(len(own.cosigners)))
	for _, w := range own.cosigners {
		b = append(b, w[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(own.anchors)))
	for _, p := range own.anchors {
		b = appendBytes(b, []byte(p.Kind))
		b = append(b, p.Digest[:]...)
		pending := byte(0)
		if p.Pending {
			pending = 1
		}
		b = append(b, pending)
		b = appendBytes(b, p.Proof)
	}
	return b
}

func appendBytes(b, p []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(p))), p...)
}

// decodeCheckpointRecord parses a record made by encodeCheckpointRecord,
// checking every length before it allocates. Errors wrap
// ErrCheckpointRecord.
func decodeCheckpointRecord(b []byte) (checkpointRecord, error) {
	r := recordReader{b: b}
	var rec checkpointRecord
	if v := r.byte(); r.err == nil && v != checkpointRecordVersion {
		return rec, fmt.Errorf("%w: version %d, want %d", ErrCheckpointRecord, v, checkpointRecordVersion)
	}
	rec.note = r.bytes(anchor.MaxSignedCheckpointSize, "note")
	if n := r.count(maxRecordCosigners, "cosigners"); n > 0 {
		rec.cosigners = make([]identity.DeviceID, n)
		for i := range rec.cosigners {
			copy(rec.cosigners[i][:], r.fixed(len(identity.DeviceID{})))
		}
	}
	if n := r.count(maxRecordAnchors, "anchors"); n > 0 {
		rec.anchors = make([]anchor.AnchorProof, n)
		for i := range rec.anchors {
			p := &rec.anchors[i]
			p.Kind = string(r.bytes(maxAnchorKindLen, "anchor kind"))
			copy(p.Digest[:], r.fixed(len(p.Digest)))
			switch r.byte() {
			case 0:
			case 1:
				p.Pending = true
			default:
				r.fail("pending flag is not 0 or 1")
			}
			p.Proof = r.bytes(anchor.MaxAnchorProofSize, "anchor proof")
		}
	}
	if r.err == nil && len(r.b) > 0 {
		r.fail("%d bytes after the record", len(r.b))
	}
	if r.err != nil {
		return checkpointRecord{}, r.err
	}
	if len(rec.note) == 0 {
		return checkpointRecord{}, fmt.Errorf("%w: empty note", ErrCheckpointRecord)
	}
	return rec, nil
}

// recordReader reads a record front to back; after the first error every
// read returns zero values and err keeps that error.
type recordReader struct {
	b   []byte
	err error
}

func (r *recordReader) fail(format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrCheckpointRecord, fmt.Sprintf(format, a...))
	}
}

func (r *recordReader) fixed(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail("cut short: %d bytes left, want %d", len(r.b), n)
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *recordReader) byte() byte {
	if b := r.fixed(1); b != nil {
		return b[0]
	}
	return 0
}

// count reads a uvarint no larger than max.
func (r *recordReader) count(max int, what string) int {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n != len(binary.AppendUvarint(nil, v)) { // one encoding per record
		r.fail("bad length of %s", what)
		return 0
	}
	r.b = r.b[n:]
	if v > uint64(max) {
		r.fail("%d %s, at most %d", v, what, max)
		return 0
	}
	return int(v)
}

// bytes reads a length-prefixed field of at most max bytes, copied.
func (r *recordReader) bytes(max int, what string) []byte {
	n := r.count(max, what)
	return bytes.Clone(r.fixed(n))
}

// retain splits own checkpoints (oldest first) into those kept — the
// newest maxOwnCheckpoints, and for each anchor kind the newest with a
// confirmed proof, so receipts keep their anchors — and those dropped.
func retain(cps []ownCheckpoint) (kept, dropped []ownCheckpoint) {
	if len(cps) <= maxOwnCheckpoints {
		return cps, nil
	}
	keep := make([]bool, len(cps))
	anchored := map[string]bool{}
	for i := len(cps) - 1; i >= 0; i-- {
		keep[i] = i >= len(cps)-maxOwnCheckpoints
		for _, p := range cps[i].anchors {
			if !p.Pending && !anchored[p.Kind] {
				anchored[p.Kind] = true
				keep[i] = true
			}
		}
	}
	for i, own := range cps {
		if keep[i] {
			kept = append(kept, own)
		} else {
			dropped = append(dropped, own)
		}
	}
	return kept, dropped
}

// saveCheckpoint stores own durably. Callers hold tl.persistMu, from the
// change to tl.checkpoints it records on, so the last record written is
// the newest state.
func (tl *topicLog) saveCheckpoint(own ownCheckpoint) error {
	if tl.meta == nil {
		return nil
	}
	if err := tl.meta.PutMeta(tl.log.Name(), checkpointKey(own.c.Size), encodeCheckpointRecord(own)); err != nil {
		return fmt.Errorf("meshlog: storing checkpoint %d of %q: %w", own.c.Size, tl.topic, err)
	}
	return nil
}

// dropCheckpoints deletes the records of checkpoints retain dropped.
// Callers hold tl.persistMu.
func (tl *topicLog) dropCheckpoints(dropped []ownCheckpoint) error {
	if tl.meta == nil || len(dropped) == 0 {
		return nil
	}
	keys := make([]string, len(dropped))
	for i, own := range dropped {
		keys[i] = checkpointKey(own.c.Size)
	}
	return tl.meta.DeleteMeta(tl.log.Name(), keys...)
}

// loadCheckpoints reads the log's stored own checkpoints into
// tl.checkpoints and checks that the log still holds every tree they sign:
// one it lost would make the next checkpoint a second, different tree for
// a size already signed. where names the store for the error. A record
// that does not decode, or whose note is not this log's (a store kept
// across a key change), is skipped with a warning: it holds nothing this
// log can serve.
func (tl *topicLog) loadCheckpoints(logKey identity.DeviceID, logger *slog.Logger, where string) error {
	if tl.meta == nil {
		return nil
	}
	name := tl.log.Name()
	keys, err := tl.meta.MetaKeys(name, checkpointKeyPrefix)
	if err != nil {
		return fmt.Errorf("meshlog: reading checkpoints of %q: %w", tl.topic, err)
	}
	var cps []ownCheckpoint
	for _, key := range keys {
		raw, err := tl.meta.Meta(name, key)
		if err != nil {
			return fmt.Errorf("meshlog: reading checkpoints of %q: %w", tl.topic, err)
		}
		own, err := tl.openRecord(logKey, key, raw)
		if err != nil {
			logger.Warn("stored checkpoint skipped", "topic", tl.topic, "key", key, "file", where, "err", err)
			continue
		}
		cps = append(cps, own)
	}
	slices.SortFunc(cps, func(a, b ownCheckpoint) int { return cmp.Compare(a.c.Size, b.c.Size) })
	size := tl.log.Size()
	for _, own := range cps {
		if own.c.Size > size {
			return fmt.Errorf("%w: %s: log %q holds %d entries, but this node signed a checkpoint of %d; "+
				"restore the log from a peer or a backup, or run `bitmesh repair --data DIR` if the file is damaged, "+
				"rather than sign a different tree for a size already signed", ErrLogBehind, where, tl.topic, size, own.c.Size)
		}
		root, err := tl.log.RootAt(own.c.Size)
		if err != nil {
			return fmt.Errorf("meshlog: %s: log %q: %w", where, tl.topic, err)
		}
		if root != own.c.Root {
			return fmt.Errorf("%w: %s: log %q holds other entries than the first %d this node signed (root %x, signed %x); "+
				"restore the log from a peer or a backup, or run `bitmesh repair --data DIR` if the file is damaged, "+
				"rather than sign a different tree for a size already signed", ErrLogBehind, where, tl.topic, own.c.Size, root, own.c.Root)
		}
	}
	kept, dropped := retain(cps)
	tl.checkpoints = kept
	if err := tl.dropCheckpoints(dropped); err != nil {
		logger.Warn("old checkpoints not deleted", "topic", tl.topic, "err", err)
	}
	return nil
}

// openRecord decodes a stored checkpoint and checks its note is this log's
// checkpoint of the size its key names.
func (tl *topicLog) openRecord(logKey identity.DeviceID, key string, raw []byte) (ownCheckpoint, error) {
	rec, err := decodeCheckpointRecord(raw)
	if err != nil {
		return ownCheckpoint{}, err
	}
	c, err := anchor.OpenCheckpoint(rec.note, logKey, tl.origin)
	if err != nil {
		return ownCheckpoint{}, err
	}
	size, err := strconv.ParseUint(strings.TrimPrefix(key, checkpointKeyPrefix), 16, 64)
	if err != nil || size != c.Size {
		return ownCheckpoint{}, fmt.Errorf("%w: key %q holds the checkpoint of size %d", ErrCheckpointRecord, key, c.Size)
	}
	return ownCheckpoint{c: c, note: rec.note, cosigners: rec.cosigners, anchors: rec.anchors}, nil
}

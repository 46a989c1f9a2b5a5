package anchor

import (
	"errors"

	"github.com/bitmesh/bitmesh/internal/storecheck"
)

// Sentinels for the log and its stores. Errors returned by this package wrap
// one of them (with the detail added by %w), so callers can tell the cases
// apart with errors.Is.
var (
	// ErrClosed: the Log was used after Close.
	ErrClosed = errors.New("anchor: log closed")
	// ErrStoreClosed: the Store was used after Close.
	ErrStoreClosed = errors.New("anchor: store closed")
	// ErrStoreLocked: another process holds the BoltStore's file lock. bbolt
	// allows one writer per file, so two nodes must not share a data
	// directory.
	ErrStoreLocked = errors.New("anchor: store locked by another process")
	// ErrInvalidName: a log name is empty or longer than MaxNameLen.
	ErrInvalidName = errors.New("anchor: invalid log name")
	// ErrLeafTooLarge: a leaf's data is longer than MaxLeafSize. Nothing of
	// the batch holding it was appended.
	ErrLeafTooLarge = errors.New("anchor: leaf too large")
	// ErrInvalidBatch: a batch is empty or holds more than MaxBatchLeaves
	// leaves. Nothing of it was appended.
	ErrInvalidBatch = errors.New("anchor: invalid batch")
	// ErrOutOfRange: a leaf index or tree size lies beyond the log's size,
	// or a pair of sizes is in the wrong order.
	ErrOutOfRange = errors.New("anchor: index or size out of range")
	// ErrNotFound: a Store holds no record under the requested key. A Log
	// only asks for records its size says exist, so it reports a missing one
	// as ErrCorrupt.
	ErrNotFound = errors.New("anchor: record not found")
	// ErrConflict: a Store's size for the log is not the size the batch was
	// built on, so another writer appended to the same log. Nothing of the
	// batch was stored. Open each log name once per Store.
	ErrConflict = errors.New("anchor: concurrent writer on the same log")
	// ErrStoreDamaged: OpenBoltStore refused a store file that exists but
	// is damaged (empty, cut short, invalid meta pages, a failed bbolt
	// consistency check), or CheckLogs found a log whose hashes do not
	// match its leaves. The error names the file and the command that sets
	// it aside and keeps what is readable: bitmesh repair --data DIR. It is
	// the same value as antispam.ErrStoreDamaged.
	ErrStoreDamaged = storecheck.ErrDamaged
	// ErrCorrupt: stored records contradict each other (a node hash that
	// does not match its children or leaf, a missing record below the size,
	// a record past it). The log must not be served or extended.
	ErrCorrupt = errors.New("anchor: corrupt log")
)

// Checkpoint, cosignature and receipt failures. Each error returned by
// checkpoint.go and receipt.go wraps exactly one of them.
var (
	// ErrCheckpointMalformed is returned for a checkpoint body or signed note
	// that does not parse, or is too large.
	ErrCheckpointMalformed = errors.New("anchor: malformed checkpoint")
	// ErrCheckpointSignature is returned when the log's signature is missing
	// from a signed checkpoint or does not verify.
	ErrCheckpointSignature = errors.New("anchor: checkpoint not signed by the log key")
	// ErrOriginMismatch is returned when a checkpoint names another log.
	ErrOriginMismatch = errors.New("anchor: checkpoint origin mismatch")
	// ErrCosignature is returned when a cosignature by a trusted witness does
	// not verify: the whole note is rejected, as C2SP signed-note advises.
	ErrCosignature = errors.New("anchor: invalid witness cosignature")
	// ErrNotEnoughCosignatures is returned when fewer trusted witnesses than
	// required cosigned a checkpoint.
	ErrNotEnoughCosignatures = errors.New("anchor: not enough witness cosignatures")
	// ErrNotEquivocation is returned when two checkpoints are not provably
	// inconsistent on their own.
	ErrNotEquivocation = errors.New("anchor: checkpoints are not self-evidently inconsistent")
	// ErrReceiptMalformed is returned for a receipt that does not parse, is
	// not canonical or exceeds its bounds.
	ErrReceiptMalformed = errors.New("anchor: malformed receipt")
	// ErrEnvelopeInvalid is returned when a receipt's envelope does not decode
	// or its sender's signature does not verify.
	ErrEnvelopeInvalid = errors.New("anchor: receipt envelope invalid")
	// ErrInclusion is returned when a receipt's inclusion proof does not lead
	// from its envelope to the checkpoint's root.
	ErrInclusion = errors.New("anchor: inclusion proof invalid")
)

// Anchoring failures. Errors from VerifyAnchor, and from the verifiers and
// Anchorers of the kind packages (anchor/bitcoin, anchor/ots), wrap one of
// them.
var (
	// ErrUnknownAnchorKind is returned for an anchor proof of a kind no
	// verifier is registered for (RegisterAnchorKind): one this version
	// does not know, or one whose package the program does not import. The
	// error is an *UnknownAnchorKindError naming that package.
	ErrUnknownAnchorKind = errors.New("anchor: unknown anchor kind")
	// ErrAnchorInvalid is returned when an anchor proof does not parse or
	// does not lead from its digest to a block.
	ErrAnchorInvalid = errors.New("anchor: invalid anchor proof")
	// ErrAnchorPending is returned for a proof that is submitted but not
	// yet confirmed in a block.
	ErrAnchorPending = errors.New("anchor: anchor proof pending confirmation")
)

// ErrInvalidMeta: a meta key is empty or longer than MaxMetaKeyLen, or a
// value is longer than MaxMetaValueSize. Nothing was stored.
var ErrInvalidMeta = errors.New("anchor: invalid meta record")

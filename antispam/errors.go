package antispam

import (
	"errors"
	"fmt"

	"github.com/bitmesh/bitmesh/internal/storecheck"
)

// Sentinels for the misbehaviour ledger, its ban store and the rate limiters.
// Errors returned by this package wrap one of them, so callers can tell the
// cases apart with errors.Is.
var (
	// ErrBanned: the subject is banned; the caller should drop its traffic
	// (and, for a peer, close the connection).
	ErrBanned = errors.New("antispam: banned")
	// ErrRateLimited: the subject sent faster than its token bucket allows.
	ErrRateLimited = errors.New("antispam: rate limited")
	// ErrStoreClosed: the ban store was used after Close.
	ErrStoreClosed = errors.New("antispam: ban store closed")
	// ErrStoreLocked: another process holds the ban store's file lock. bbolt
	// allows one writer per file, so two nodes must not share a data
	// directory.
	ErrStoreLocked = errors.New("antispam: ban store locked by another process")
	// ErrStoreDamaged: OpenBoltStore refused a ban store file that exists
	// but is damaged (empty, cut short, invalid meta pages, a failed bbolt
	// consistency check). The error names the file and the command that
	// sets it aside and keeps the readable bans: bitmesh repair --data DIR.
	// It is the same value as anchor.ErrStoreDamaged.
	ErrStoreDamaged = storecheck.ErrDamaged
	// ErrCorruptBan: a stored ban record could not be decoded. Load skips
	// such records and reports them with this error; the other records are
	// still returned and the corrupt one is left in place for inspection.
	ErrCorruptBan = errors.New("antispam: corrupt ban record")
	// ErrInvalidBan: a ban cannot be stored (invalid subject, reason too
	// long, or a time outside the encodable range).
	ErrInvalidBan = errors.New("antispam: invalid ban")
	// ErrInvalidConfig: a LedgerConfig, RateConfig or DifficultyConfig setting
	// is out of range.
	ErrInvalidConfig = errors.New("antispam: invalid config")
)

// RecordError says why a stored ban record failed to decode. It wraps
// ErrCorruptBan, as gossip.DecodeError wraps gossip.ErrMalformed, so callers
// can tell a damaged record apart from an IO failure.
type RecordError struct {
	Key    []byte // the record's key as stored (kind byte + subject ID)
	Field  string // the field being decoded
	Reason string
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("%v: key %x: %s: %s", ErrCorruptBan, e.Key, e.Field, e.Reason)
}

// Unwrap returns ErrCorruptBan.
func (e *RecordError) Unwrap() error { return ErrCorruptBan }

func corrupt(key []byte, field, format string, args ...any) error {
	return &RecordError{Key: append([]byte(nil), key...), Field: field, Reason: fmt.Sprintf(format, args...)}
}

func invalidConfig(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}

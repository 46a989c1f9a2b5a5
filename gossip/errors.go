package gossip

import (
	"errors"
	"fmt"
)

// Sentinels for validation failures. Every error the validator returns wraps
// exactly one of them, so callers (and the anti-spam ledger) can classify it
// with errors.Is.
var (
	// ErrMalformed: the bytes are not a canonical envelope encoding.
	ErrMalformed = errors.New("gossip: malformed envelope")
	// ErrOversize: the envelope or a field in it exceeds its limit.
	ErrOversize = errors.New("gossip: envelope too large")
	// ErrWrongNetwork: the envelope's network magic is not this mesh's.
	ErrWrongNetwork = errors.New("gossip: wrong network")
	// ErrStale: the timestamp is older than the freshness window.
	ErrStale = errors.New("gossip: envelope too old")
	// ErrFuture: the timestamp is further ahead than the allowed clock skew.
	ErrFuture = errors.New("gossip: envelope from the future")
	// ErrInsufficientWork: the envelope ID does not meet its committed
	// proof-of-work target.
	ErrInsufficientWork = errors.New("gossip: insufficient proof of work")
	// ErrBadSignature: the signature does not verify against the sender key.
	ErrBadSignature = errors.New("gossip: bad signature")
	// ErrWrongTopic: the envelope's topic differs from the topic it arrived on.
	ErrWrongTopic = errors.New("gossip: envelope topic does not match pubsub topic")
	// ErrDuplicate: the envelope ID was already accepted with other
	// signature bytes (a re-signed copy, PROTOCOL.md §9). It is valid, but
	// delivering it again would hand subscribers the same message twice.
	// Always an Ignore: the forwarder may not have seen the first copy.
	ErrDuplicate = errors.New("gossip: envelope ID already delivered under another signature")
)

// DecodeError describes where a decode failed. It wraps ErrMalformed or
// ErrOversize, as btcd's MessageError lets callers tell malformed input apart
// from IO errors.
type DecodeError struct {
	Field  string // the field being decoded
	Offset int    // byte offset of the field
	Reason string
	kind   error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("%v: %s at offset %d: %s", e.kind, e.Field, e.Offset, e.Reason)
}

// Unwrap returns ErrMalformed or ErrOversize.
func (e *DecodeError) Unwrap() error { return e.kind }

func malformed(field string, off int, format string, args ...any) error {
	return &DecodeError{Field: field, Offset: off, Reason: fmt.Sprintf(format, args...), kind: ErrMalformed}
}

func oversize(field string, off int, format string, args ...any) error {
	return &DecodeError{Field: field, Offset: off, Reason: fmt.Sprintf(format, args...), kind: ErrOversize}
}

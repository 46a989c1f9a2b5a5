package mqtt

import "errors"

// Sentinels. Errors returned by this package wrap one of them.
var (
	// ErrBatchMalformed: a batch payload or entry proof does not parse or
	// does not hash to its root.
	ErrBatchMalformed = errors.New("mqtt: malformed batch")
	// ErrWrapperMalformed: a JSON wrapper does not parse.
	ErrWrapperMalformed = errors.New("mqtt: malformed wrapper")
	// ErrConfig: a Config field is out of range.
	ErrConfig = errors.New("mqtt: bad config")
	// ErrClosed: the gateway was used before Start or after Close.
	ErrClosed = errors.New("mqtt: gateway not running")
	// ErrJournal: the gateway's journal could not be read or written; the
	// messages it holds are not acknowledged.
	ErrJournal = errors.New("mqtt: journal")
	// ErrRefused: the mesh refused a batch (the log full, a ban); the
	// messages in it are not acknowledged.
	ErrRefused = errors.New("mqtt: mesh refused the batch")
)

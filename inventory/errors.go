package inventory

import "errors"

// Sentinels. Errors returned by this package wrap one of them.
var (
	// ErrMalformed: a manifest, leaf list or stream frame does not parse,
	// or breaks a bound of PROTOCOL.md §20.
	ErrMalformed = errors.New("inventory: malformed message")
	// ErrBadSignature: a manifest's signature does not verify under its
	// publisher's key.
	ErrBadSignature = errors.New("inventory: bad manifest signature")
	// ErrWrongNetwork: a manifest names another mesh.
	ErrWrongNetwork = errors.New("inventory: manifest of another network")
	// ErrBadChunk: a chunk or leaf list does not hash to what the manifest
	// commits to. A peer that serves one is banned.
	ErrBadChunk = errors.New("inventory: chunk does not match the manifest")
	// ErrNotFound: no such object here, or a peer answered notfound.
	ErrNotFound = errors.New("inventory: object not found")
	// ErrIncomplete: the object is still being fetched.
	ErrIncomplete = errors.New("inventory: object incomplete")
	// ErrQuota: the object would take its type past its quota
	// (Config.Quota, Config.TypeQuotas).
	ErrQuota = errors.New("inventory: over the type's quota")
	// ErrCorruptStore: a file in the object store is damaged; the error
	// names it. Move the object's directory aside (or delete it) and the
	// node fetches it again.
	ErrCorruptStore = errors.New("inventory: damaged object store")
	// ErrStalled: a peer did not answer a request in time.
	ErrStalled = errors.New("inventory: peer stalled")
	// ErrClosed: the extension was used before Start or after Close.
	ErrClosed = errors.New("inventory: not running")
	// ErrNoSource: no connected peer has the object.
	ErrNoSource = errors.New("inventory: no peer serves the object")
)

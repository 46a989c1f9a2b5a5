package bitcoin

import "errors"

// Errors of this package. Besides them, a proof that does not parse or does
// not lead from its digest to a block header fails with an error wrapping
// anchor.ErrAnchorInvalid, and one whose transaction is not yet confirmed
// with anchor.ErrAnchorPending, as every anchor kind's do; tell the cases
// apart with errors.Is.
var (
	// ErrConfig: NewAnchorer refused its Config (no RPCURL, Net or Key, or
	// a key no address can be derived from).
	ErrConfig = errors.New("bitcoin: invalid config")
	// ErrRPC: a call to the node's JSON-RPC failed: the node could not be
	// reached, refused the credentials, answered with an RPC error (such
	// as a rejected transaction) or with something that does not decode.
	ErrRPC = errors.New("bitcoin: node RPC failed")
	// ErrNoCoin: Anchor found no confirmed coin at the funding address
	// (Anchorer.Address) large enough to pay the fee. Send coins there.
	ErrNoCoin = errors.New("bitcoin: no confirmed coin to spend")
)

// Package ots anchors checkpoints with OpenTimestamps: it submits a
// checkpoint's anchor digest to OpenTimestamps calendars and keeps the
// proof as a standard detached timestamp (.ots) file, byte-compatible with
// the reference implementation (python-opentimestamps), so `ots verify`
// checks it too (PROTOCOL.md §18.5).
//
// The package has two parts. The codec (ots.go) reads and writes .ots
// files: File is a timestamp of a SHA-256 digest, Timestamp its commitment
// tree of Ops and Attestations, ParseFile and File.Marshal convert, and
// Timestamp.Leaves evaluates the tree. The calendar client (client.go),
// Anchorer, implements anchor.Anchorer with calendars over HTTP.
//
// Importing the package registers its verifier for anchor.KindOpenTimestamps
// with anchor.RegisterAnchorKind. A program that verifies receipts or
// anchor proofs must import it, if only for that:
//
//	import _ "github.com/bitmesh/bitmesh/anchor/ots"
//
// Without it anchor.VerifyAnchor refuses OpenTimestamps proofs with an
// *anchor.UnknownAnchorKindError.
//
// Anchoring a checkpoint:
//
//	a, err := ots.NewAnchorer(ots.Config{
//		Calendars:    []string{"https://a.pool.opentimestamps.org", "https://b.pool.opentimestamps.org"},
//		MinResponses: 2,
//	})
//	if err != nil {
//		return err // ots.ErrConfig
//	}
//	p, err := a.Anchor(ctx, checkpoint) // p.Pending: the calendars have it
//	...
//	p, err = a.Upgrade(ctx, p) // hours later; anchor.ErrAnchorPending until a block has it
//	at, err := anchor.VerifyAnchor(p) // offline: height and Merkle root of the block
//
// The caller's duties:
//
//  1. Configure calendars you choose. Upgrade asks only them, never a URL
//     read from a proof, so a proof cannot make the node call out.
//  2. Keep the pending proof and call Upgrade later: calendars batch
//     commitments into a Bitcoin transaction every few hours, and answer
//     404 (anchor.ErrAnchorPending) until then.
//  3. Check the attestation against the chain: anchor.VerifyAnchor
//     establishes offline that the digest leads to a Merkle root claimed
//     for a block height; that the block at that height has that root is
//     for a Bitcoin node or block explorer the reader trusts.
//
// Anchor sends only SHA-256(digest ‖ 16-byte random nonce) to calendars, as
// the reference client does, so a calendar learns nothing about the
// checkpoint. Calendar calls are bounded by the caller's context; the
// package starts no goroutines and keeps no state between calls.
package ots

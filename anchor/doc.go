// Package anchor keeps per-topic append-only Merkle logs, so that anyone can
// check that an envelope was accepted and that a log never rewrites its past.
// On the data path (docs/ARCHITECTURE.md, "The path of a message") the
// anchor/meshlog extension appends every accepted envelope of a logged
// topic to that topic's log before the node hands it to subscribers.
//
// The package has these parts, each building on the one before:
//
//   - The durable log (log.go, store.go, meta.go): Log over a Store
//     (BoltStore on disk, MemoryStore in tests), with a MetaStore for small
//     per-log records. Hashing and proofs follow RFC 9162 (leaf hash
//     SHA-256(0x00 || data), node hash SHA-256(0x01 || left || right))
//     through github.com/transparency-dev/merkle, so any RFC 9162 verifier,
//     such as merkle/proof.VerifyInclusion, checks its proofs.
//   - Checkpoints (checkpoint.go): Checkpoint is a C2SP tlog-checkpoint body
//     committing to Log.Root; SignCheckpoint signs it as a C2SP signed note,
//     Cosign adds a witness cosignature (C2SP cosignature/v1 with BIP-340),
//     VerifyCosignatures checks both, and Equivocation proves a log signed
//     two inconsistent checkpoints.
//   - Receipts (receipt.go): a Receipt is an envelope with its inclusion
//     proof, the signed and cosigned checkpoint and that checkpoint's anchor
//     proofs; VerifyReceipt checks it offline (PROTOCOL.md §17.7).
//   - The anchoring interface (anchorer.go): an Anchorer timestamps a
//     checkpoint's AnchorDigest in a public system and returns an
//     AnchorProof; VerifyAnchor checks one offline. The implementations live
//     in their own packages, anchor/bitcoin (OP_RETURN outputs) and
//     anchor/ots (OpenTimestamps), and register their verifiers with
//     RegisterAnchorKind when imported. A program that verifies receipts
//     must import the packages of the kinds it accepts (a blank import
//     does); a proof of a kind whose package is not linked in is refused
//     with an *UnknownAnchorKindError, never accepted unchecked.
//
// Using a log takes a Store and a name:
//
//	store, err := anchor.OpenBoltStore(filepath.Join(dataDir, "anchor.db"))
//	if err != nil {
//		return err
//	}
//	defer store.Close()
//	log, err := anchor.OpenLog(store, "topic/sensors")
//	if err != nil {
//		return err // anchor.ErrCorrupt: the stored log contradicts itself
//	}
//	defer log.Close()
//	index, err := log.AppendOne(envelopeBytes) // durable when it returns
//	root, err := log.Root()
//	proof, err := log.InclusionProof(index, log.Size())
//
// The caller's duties:
//
//  1. Open each log name once per Store (one Log per topic). A second writer
//     on the same name fails with ErrConflict instead of forking the log.
//  2. Give one process one BoltStore file: bbolt locks it, and a second open
//     fails after a second with ErrStoreLocked.
//  3. Prefer Append with a batch when the leaves are at hand: each call is
//     one fsynced transaction. AppendOne lets concurrent callers share one
//     (group commit) but still waits for an fsync per group.
//  4. Treat an acknowledged index as durable: Append and AppendOne return
//     only after the commit is on disk, and a crash (even kill -9) loses
//     nothing they acknowledged. A batch cut off by a crash is either wholly
//     present or wholly absent after reopening.
//  5. Close the Log before the Store; Close stops the log's appends and
//     starts no goroutines, so there is nothing else to stop.
//
// Leaves are bounded by MaxLeafSize, batches by MaxBatchLeaves. The package
// does no IO of its own besides the Store and never reads the clock
// (Cosign takes the time as an argument); anchoring, which talks to the
// network, is in anchor/bitcoin and anchor/ots.
package anchor

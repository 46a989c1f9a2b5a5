// Package bitcoin anchors checkpoints in Bitcoin: it commits a checkpoint's
// anchor digest in an OP_RETURN output of a transaction it builds, signs
// and broadcasts through a node's JSON-RPC, and once the transaction is
// mined turns the pending proof into one anyone can check offline: the
// transaction, its Merkle branch and the block header (PROTOCOL.md §18.1,
// §18.2).
//
// The package has two parts. bitcoin.go holds the commitment
// (OpReturnScript), the proof encoding and its offline verifier; rpc.go
// holds Anchorer, which implements anchor.Anchorer with a btcd (or
// Bitcoin Core) node.
//
// Importing the package registers its verifier for
// anchor.KindBitcoinOpReturn with anchor.RegisterAnchorKind. A program
// that verifies receipts or anchor proofs must import it, if only for
// that:
//
//	import _ "github.com/bitmesh/bitmesh/anchor/bitcoin"
//
// Without it anchor.VerifyAnchor refuses Bitcoin proofs with an
// *anchor.UnknownAnchorKindError.
//
// Anchoring a checkpoint:
//
//	a, err := bitcoin.NewAnchorer(bitcoin.Config{
//		RPCURL: "http://127.0.0.1:18556", RPCUser: user, RPCPass: pass,
//		Net: &chaincfg.SimNetParams, Key: key,
//	})
//	if err != nil {
//		return err // bitcoin.ErrConfig
//	}
//	fmt.Println("fund", a.Address()) // Anchor spends coins sent here
//	p, err := a.Anchor(ctx, checkpoint) // p.Pending: broadcast, not mined
//	...
//	p, err = a.Upgrade(ctx, p) // anchor.ErrAnchorPending until MinConfirmations
//	at, err := anchor.VerifyAnchor(p) // offline: block hash, height, time, nBits
//
// The caller's duties:
//
//  1. Run a node with an address index: Anchorer finds its coins with
//     searchrawtransactions, so btcd needs --txindex --addrindex.
//  2. Fund Address with small amounts only: the key that controls it is
//     in Config, and each anchor spends one coin (ErrNoCoin when none is
//     left).
//  3. Keep the pending proof and call Upgrade after the transaction is
//     mined; raise Config.MinConfirmations where reorganisations matter.
//  4. Check the attestation against the chain: offline verification
//     proves that the digest is committed in a block header with valid
//     proof of work for the nBits it states; that the header is in the
//     best chain is for a node or block explorer the reader trusts.
//
// Anchorer is safe for concurrent use and sends one transaction at a time.
// Every RPC call is bounded by the caller's context; the package starts no
// goroutines.
package bitcoin

// Package antispam holds bitmesh's defences against spam and abuse, as
// Bitcoin survives an open network: cheap checks, costly writes, and a
// memory of who misbehaved. Everything here is a pure core that takes time
// as an argument; the ban store sits behind an interface. Package node
// wires it all into GossipSub.
//
//   - Proof of work (pow.go): MintProofOfWork searches the envelope nonce
//     on all cores, cancellable, until the envelope ID has the committed
//     number of leading zero bits; the target is inside the signed bytes,
//     and the sender too, so a gateway can mint for a weak device that
//     signs afterwards (delegated work).
//   - Difficulty (difficulty.go): each topic's mesh-wide base target, and
//     an optional adaptive raise of this node's local target while a topic
//     is busy. It implements gossip.WorkPolicy: below the base is rejected,
//     between base and local is ignored, so honest senders are never
//     penalised for one node's load.
//   - Rate limits (ratelimit.go): token buckets per sending device and per
//     forwarding peer.
//   - The misbehaviour ledger (ledger.go, banscore.go, store.go): btcd's
//     DynamicBanScore model, a persistent plus a transient score halving
//     every 60 s, a ban at 100 for 24 h, for peers and for devices, with bans
//     kept in a bbolt file across restarts. docs/PROTOCOL.md §15 has the
//     penalty table.
//   - GossipSub scoring (gossipscore.go): peer-score parameters whose
//     application-specific part (P5) is minus the ledger's score.
//
// A node uses them like this for every envelope a peer forwards:
//
//	if !limiter.AllowPeer(now, from) {
//		ledger.Record(now, antispam.PeerSubject(from), antispam.RateExceeded)
//		return ignore
//	}
//	r := validator.Validate(now, topic, raw) // with Work: difficulty
//	if m, ok := antispam.ClassifyReject(r.Err); ok && r.Verdict == gossip.Reject {
//		ledger.Record(now, antispam.PeerSubject(from), m) // may ban: OnBan disconnects
//	}
package antispam

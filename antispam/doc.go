// Package antispam will own bitmesh's defences against spam and abuse; it is
// a placeholder today (see the issue "Anti-spam").
//
// Planned here, all as pure cores that take time as an argument and keep any
// store behind an interface:
//
//   - proof of work: minting (all cores, cancellable) and verification of the
//     leading-zero-bit target on an envelope ID, and the difficulty policy
//     that sets each topic's target;
//   - rate limiters per peer and per sender;
//   - the misbehaviour ledger and ban list, scored as btcd's DynamicBanScore
//     (persistent plus transient score halving every 60 s; 100 bans for 24 h);
//   - GossipSub peer-score parameters that feed the ledger's scores back into
//     mesh selection and the connection gater.
//
// What exists already elsewhere: package gossip commits the proof-of-work
// target inside the signed envelope and its Validator rejects envelopes whose
// ID falls short of it (gossip.ErrInsufficientWork); and every validation
// failure wraps one of gossip's sentinel errors, so the ledger can score a
// verdict by its cause with errors.Is. node.WithObserver delivers every
// validation result, with the forwarding peer, to the hook the ledger will
// use.
package antispam

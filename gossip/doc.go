// Package gossip is the bitmesh message core: the envelope codec and its
// IDs, the validation pipeline as pure decisions, and the adapter that plugs
// that pipeline into GossipSub. It does no IO and never reads the clock:
// time is always an argument.
//
// An Envelope is a signed mesh message. Its ID is the BIP-340 tagged hash of
// its encoding without the signature; the ID is what the sender signs, what
// proof of work is measured on, and (with the signature) GossipSub's message
// ID. A Validator judges raw bytes arriving on a topic and returns a Result
// whose Verdict has GossipSub's three meanings: Accept, Reject (penalise the
// forwarder) or Ignore (drop without penalty). Every Result.Err wraps one of
// the package's sentinel errors, so callers classify failures with errors.Is.
//
//	network := gossip.NetworkFromName("greenhouse")
//	env := gossip.Envelope{Network: network, Time: now, Seq: 1,
//		Topic: "sensors/temp", Payload: []byte("21.5")}
//	raw, id, err := env.Seal(key) // key is an *identity.PrivateKey
//	if err != nil {
//		return err
//	}
//	v, err := gossip.NewValidator(gossip.DefaultValidatorConfig(network))
//	if err != nil {
//		return err
//	}
//	r := v.Validate(now, "sensors/temp", raw) // r.Verdict == gossip.Accept, r.ID == id
//
// Validate runs size → decode → network → topic → freshness → proof of work
// → seen cache → signature, cheapest first, and answers a duplicate from the
// seen cache without a second signature check.
//
// The caller's duties, which package node carries out:
//
//  1. Pass the time in. Validate and MarkVerified take it from you (time.Now in a node, a virtual clock in a
//     simulation); this package never calls time.Now.
//  2. Give GossipSub PubSubMessageID as its message ID function
//     (pubsub.WithMessageIdFn) and run it with the StrictNoSign policy
//     (pubsub.WithNoAuthor): the envelope already authenticates the message,
//     and the ID includes the signature so a forged copy cannot shadow the
//     genuine one in GossipSub's seen cache.
//  3. Register a validator for every topic you join
//     (pubsub.RegisterTopicValidator) that calls Validate and returns
//     Verdict.PubSub; on Accept, store the decoded *Envelope in the
//     message's ValidatorData, so subscribers never decode twice.
//  4. Call MarkVerified for every envelope you Seal yourself, before you
//     publish it, so your own validator does not check your own signature.
//  5. Keep GossipSub's seen-messages TTL at least v.Config().Window()
//     (pubsub.WithSeenMessagesTTL), so every replay the freshness window
//     lets through is still remembered as seen.
//
// The wire format is specified in docs/PROTOCOL.md, with test vectors.
package gossip

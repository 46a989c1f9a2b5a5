// Package sim will be the bitmesh swarm simulator; it is a placeholder today.
//
// It will run thousands of real node.Node instances (the same code devices
// run, not a model) in one process, on an in-memory libp2p network with
// link latency and bandwidth (go-libp2p's p2p/net/mock, or x/simlibp2p with
// simnet), in virtual time under testing/synctest, with scripted scenarios,
// adversaries, metrics and reports.
//
// The hooks it needs are already in place in package node:
//
//   - node.WithHost runs a node on a host the caller made, such as an
//     in-memory mock host carrying the node's key;
//   - Config.Clock supplies the time for envelopes and validation, so a
//     simulation passes its virtual clock;
//   - node.WithObserver reports every validation result, for metrics and
//     attack reports.
package sim

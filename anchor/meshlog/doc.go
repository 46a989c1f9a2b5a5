// Package meshlog is the node extension that keeps Merkle logs of mesh
// topics: every envelope a node accepts on a logged topic is appended to
// that topic's log (package anchor), and the log's signed checkpoints,
// cosigned by witnesses and anchored to Bitcoin, let anyone prove later
// that the node saw the envelope, and when.
//
// Embedding it is one option to node.New:
//
//	cfg := meshlog.DefaultConfig()
//	cfg.Topics = []string{"sensors/temp"}
//	cfg.DataDir = dataDir // anchor.db lives here; empty: in memory
//	logs, err := meshlog.New(cfg)
//	if err != nil {
//		return err
//	}
//	n, err := node.New(node.DefaultConfig(), node.WithExtension(logs))
//	...
//	r, err := logs.Receipt("sensors/temp", id) // once a checkpoint covers id
//
// # What it does
//
//   - Logging (meshlog.go, quota.go): the extension hooks each logged
//     topic into the node's receive path (ext.TopicHook). An envelope is
//     appended durably before the node accepts it, after every check the
//     node runs, and within per-device and per-topic quotas and the log's
//     size bound (Config.MaxLogBytes, ErrLogFull).
//   - Checkpoints (checkpoints.go, persist.go): each log is signed every
//     CheckpointEvery entries or CheckpointInterval, published on the
//     checkpoint topic (Topic), and kept in the store so a restarted node
//     never signs a tree that conflicts with one it signed (ErrLogBehind).
//   - Witnessing (follow.go): nodes check other logs' checkpoints for
//     consistency, cosign them when Config.Witness is set, and publish
//     evidence of equivocation, which bans the log's device everywhere.
//     Logs a node has no reason to follow are budgeted (StrangerRate).
//   - History sync (sync.go, stream.go, wire.go): over the stream protocol
//     /bitmesh/log/1.0.0 a node fetches the entries of a checkpointed log it
//     missed while offline; each entry goes through the node's receive path
//     (ext.Host.Admit) exactly as live gossip does, after the entries are
//     proven to hash to the signed root. Answers, concurrency and memory
//     are bounded.
//   - Anchoring: Config.Anchorers (anchor/bitcoin, anchor/ots) timestamp
//     checkpoints; the proofs go into receipts.
//   - Control API (routes.go): the log routes under RoutePrefix, mounted by
//     the node's control server (ext.Routes).
//
// The wire formats are specified in docs/PROTOCOL.md §17 and §18; the
// threat model in SECURITY.md.
package meshlog

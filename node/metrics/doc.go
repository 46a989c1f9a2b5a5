// Package metrics exposes a running node to Prometheus and to health
// checks, on a listener of its own, apart from the control API:
//
//	GET /metrics  Prometheus text exposition of the node's counters
//	GET /healthz  200 while the node runs, else 503
//	GET /readyz   200 while the node runs with at least one peer, else 503
//
// None of them needs a token and none changes anything: they only read
// the node. They still tell an onlooker how busy the node is and what it
// refuses, so `bitmesh node --metrics` listens on loopback unless told
// otherwise (--metrics-allow-remote); put a scraper beside the node or
// tunnel to it.
//
// # Wiring
//
// The metrics live in a private registry, never Prometheus's global one,
// so two nodes in one process do not mix. libp2p's own host metrics go to
// the same registry when the node is built with its registerer:
//
//	reg := metrics.NewRegistry() // with the Go runtime and process collectors
//	n, err := node.New(cfg, node.WithLibp2pOptions(libp2p.PrometheusRegisterer(reg)))
//	...
//	if err := n.Start(ctx); err != nil { ... }
//	h, err := metrics.New(reg, n, metrics.WithLogs(logsOf(meshLog)), metrics.WithObjects(objectsOf(inv)))
//	srv := metrics.NewServer(h) // bounded timeouts and header size
//	go srv.Serve(ln)
//
// # What is measured
//
// Every bitmesh_ metric is read from the node when Prometheus scrapes
// (Node.Peers, Topics, ValidatorStats, Messages, Drops, Bans, Scores,
// StreamsRefused, the Merkle logs through WithLogs, the object store
// through WithObjects and the MQTT gateway's counters through WithMQTT):
// nothing is added to the node's hot paths, and a
// scrape costs one pass over the node's state. Counters count since the node started; a restart resets them,
// which Prometheus's rate() handles.
//
// No label is taken from what peers control: drop and refusal reasons are
// fixed sets, topics and stream protocols are the node's own
// configuration, and nothing is labelled by peer or device ID, so a
// hostile mesh cannot grow the series without bound.
//
// The handler serves at most a few scrapes at once (more get 503) and
// gives each a deadline, so a flood of scrapes cannot pin a small board's
// CPU.
package metrics

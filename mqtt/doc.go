// Package mqtt is the MQTT gateway, a node extension: devices that speak
// MQTT, not libp2p, reach the mesh through it, and every message they
// publish is signed, timestamped and logged on their behalf; mesh
// messages reach MQTT subscribers with their signer.
//
// Embedding it is one more option to node.New, next to the logs that
// certify what it publishes:
//
//	lc := meshlog.DefaultConfig()
//	lc.Topics = []string{"sensors/t"} // certified: logged, receipted
//	logs, err := meshlog.New(lc)
//	...
//	cfg := mqtt.DefaultConfig() // embedded broker on 127.0.0.1:1883
//	gw, err := mqtt.New(cfg, logs)
//	...
//	n, err := node.New(node.DefaultConfig(), node.WithExtension(logs), node.WithExtension(gw))
//	err = n.Start(ctx)
//	// mosquitto_pub -p 1883 -t sensors/t -m 21.5
//
// `bitmesh node --mqtt 127.0.0.1:1883` does the same from the command line.
//
// # What it does
//
//   - Broker (broker.go): an embedded mochi-mqtt broker (MQTT 3.1.1 and 5,
//     TCP or TLS), or with Config.Bridge a client of an existing broker
//     (bridge.go, eclipse paho, MQTT 3.1.1). Clients without credentials
//     are let in from loopback only; users authenticate with bcrypt-hashed
//     passwords and are held to their topic ACLs. Every refusal is counted
//     by reason (Gateway.Stats, GET /v1/mqtt) and logged, each message at
//     most once per 10 s with the number suppressed, so that no client can
//     flood the node's log; none reaches the mesh.
//   - Mapping (config.go): Config.Mappings pairs MQTT topic filters with
//     mesh topics, both ways; with none, an MQTT topic that is a valid mesh
//     topic maps to the mesh topic of that name.
//   - Batching (batcher.go, batch.go): the messages of one mesh topic that
//     arrive within Config.Linger are sealed into one envelope, signed once
//     and verified once by every node, whose payload is a batch: each entry
//     records the MQTT client ID, topic, packet ID, time and payload, and is
//     provable on its own by a Merkle audit path to the batch root
//     (PROTOCOL.md §21).
//   - Durability (journal.go): a batch is journaled (DataDir/mqtt.db)
//     before it is published, and published (into the topic's log, when
//     the node logs it) before its QoS 1 messages are acknowledged. After a
//     crash the gateway republishes the same envelopes, which the mesh
//     drops by ID if it has them, and recognises the devices' retries
//     (DUP) of messages it holds, so a restart never puts one on the mesh
//     twice.
//   - Delivery (broker.go fromMesh): mesh messages go to MQTT subscribers
//     with the signer's device ID in MQTT 5 user properties, or in a JSON
//     wrapper (wrapper.go) for 3.1.1 clients. A gateway never sends a
//     wrapped message back to the mesh, and its own envelopes are delivered
//     locally when published, so gateways do not echo each other.
//   - Receipts (receipts.go): once a checkpoint covers a logged batch, its
//     receipt is published on ReceiptTopicPrefix + mesh topic; `bitmesh log
//     verify` checks it offline. GET /v1/mqtt/entry gives one message's
//     audit path in its batch (routes.go).
//
// # Caller's duties
//
//  1. Pass the node's *meshlog.MeshLog to New and log the mapped topics, or
//     messages are published but not certified (counted
//     uncertified_batches).
//  2. Give the node a DataDir: without one the journal is in memory and a
//     crash loses the messages of the batch being written.
//  3. Nodes that log a gateway's topic see one device publish what many
//     devices sent: size their meshlog DeviceQuota for it.
package mqtt

// Package node is the embeddable bitmesh node: a libp2p host running
// GossipSub whose topics carry signed envelopes, validated by package
// gossip's pipeline before they are delivered or forwarded. It is the only
// package that wires libp2p; the bitmesh binary, gateway apps and the swarm
// simulator all run this same code.
//
// Embedding takes two calls, New and Start:
//
//	n, err := node.New(node.DefaultConfig())
//	if err != nil {
//		return err
//	}
//	if err := n.Start(ctx); err != nil {
//		return err
//	}
//	defer n.Close()
//
//	sub, err := n.Subscribe("sensors/temp")
//	if err != nil {
//		return err
//	}
//	defer sub.Cancel()
//	_, err = n.Publish(ctx, "sensors/temp", []byte("21.5"), node.WithMinPeers(1))
//	m, err := sub.Next(ctx) // m.From is the signer's device ID, m.Payload the bytes
//
// # Presets
//
// Start from a preset and change what you need; Config.Validate (run by New)
// reports the first bad field.
//
//   - DefaultConfig is for a device on a real network: all interfaces on
//     DefaultPort over TCP and QUIC, IPv4 and IPv6, mDNS on the LAN, NAT
//     port mapping, 32..96 connections, 1 MiB envelopes, the key in
//     ~/.bitmesh. mDNS and port mapping make the node easy to find, for
//     better and worse.
//   - LowMemoryConfig is DefaultConfig for boards with little RAM: 8..24
//     connections, 64 KiB envelopes, an 8 Ki-entry seen cache. It uses less
//     memory but is easier to eclipse, and it ignores (drops without
//     penalty) larger envelopes that the rest of the mesh carries.
//   - LocalConfig is for tests and local experiments: loopback only,
//     ephemeral ports, no mDNS or port mapping, no DataDir (a fresh key per
//     run unless Config.Key or DataDir is set), a 2 s bootstrap interval.
//
// # Options
//
// Config holds what a deployment tunes; Options change how the node is
// wired:
//
//   - WithHost runs the node on a host you made (an in-memory host in a
//     simulation); its key must be the node's key, and the node does not
//     close it.
//   - WithLibp2pOptions and WithPubSubOptions append options to those the
//     node passes to libp2p.New and pubsub.NewGossipSub. Options that change
//     message IDs, signing or validation break the mesh's invariants.
//   - WithObserver receives every validation result with the forwarding
//     peer, for metrics or scoring. It must not block.
//   - WithExtension adds a feature package (an ext.Extension, such as
//     anchor/meshlog's logs): it is started with the node and given an
//     ext.Host, through which it hooks topics into the receive path,
//     serves stream protocols within limits, admits recovered envelopes
//     through the same checks as live gossip, and mounts control-API
//     routes. Extensions start in the order given and close in reverse.
//
// Per call, Publish takes WithMinPeers (wait, bounded by ctx, until that many
// peers subscribe to the topic) and Subscribe takes WithBuffer.
//
// # The caller's duties
//
//  1. Call Close when done. It cancels the node's goroutines, waits for all
//     of them, and closes the host (unless it came from WithHost). Cancel
//     each Subscription you no longer read: a topic with a live
//     subscription is never left.
//  2. Read subscriptions promptly. Each queues DefaultSubscriptionBuffer
//     messages (or WithBuffer's count) for a slow reader; beyond that, new
//     messages are dropped for that subscriber only, and the mesh still
//     forwards them.
//  3. Supply Config.Clock when time is not real time, as in a simulation:
//     envelopes are stamped, and validated for freshness, with it.
//  4. Give the node peers: BootstrapPeers (full multiaddrs ending in
//     /p2p/<peer id>, as Addrs returns them), mDNS on a LAN, or Connect.
//
// # What the node wires
//
//   - A libp2p host (TCP and QUIC) whose identity is the device key, so the
//     peer ID and the device ID name the same key, with a connection manager
//     at ConnLow..ConnHigh and, if NATPortMap, UPnP / NAT-PMP mapping.
//   - GossipSub with gossip.PubSubMessageID as its message ID function, no
//     libp2p-level signatures (the envelope is signed), a seen-messages TTL
//     covering the validator's freshness window, peer exchange, and flood
//     publishing of the node's own messages. Each mesh topic T is the
//     GossipSub topic "bitmesh/<network>/T", with the gossip validator
//     registered on it. The node joins a topic on its first Publish or
//     Subscribe and leaves it once TopicIdleTimeout passes with no
//     subscription and no publish on it; topics that extensions watch stay
//     joined. An RPC larger than an envelope and its framing is dropped
//     and scored against the peer that sent it.
//   - mDNS discovery of nodes of the same network on the LAN (if MDNS), and
//     a bootstrap loop that redials BootstrapPeers every BootstrapInterval
//     while the node has fewer than MinPeers connections.
//
// A running node's local control API, used by the bitmesh CLI, is in
// package node/control.
package node

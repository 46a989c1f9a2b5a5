package mqtt

import (
	"context"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// bridge joins an existing broker as a client: what its clients publish
// on mapped topics goes to the mesh like the embedded broker's, and mesh
// messages are published there in the JSON wrapper (paho speaks 3.1.1).
// The wrapper is also how the gateway knows its own publishes when the
// broker hands them back to its subscription: they are not sent to the
// mesh again, so two gateways on one broker do not echo each other.
type bridge struct {
	g      *Gateway
	client paho.Client
	ctx    context.Context
	cancel context.CancelFunc
}

const bridgeTimeout = 10 * time.Second

func startBridge(g *Gateway) (*bridge, error) {
	ctx, cancel := context.WithCancel(context.Background())
	b := &bridge{g: g, ctx: ctx, cancel: cancel}
	filters := map[string]byte{"#": 1}
	if len(g.cfg.Mappings) > 0 {
		filters = map[string]byte{}
		for _, m := range g.cfg.Mappings {
			filters[m.MQTT] = 1
		}
	}
	opts := paho.NewClientOptions().AddBroker(g.cfg.Bridge).SetClientID(g.cfg.BridgeClientID).
		SetUsername(g.cfg.BridgeUsername).SetPassword(g.cfg.BridgePassword).
		// A persistent session: the broker keeps what arrives while the
		// gateway is down, and redelivers what the gateway did not
		// acknowledge, which it does once the message is durable.
		SetCleanSession(false).SetAutoAckDisabled(true).SetOrderMatters(false).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second).
		SetOnConnectHandler(func(c paho.Client) {
			c.SubscribeMultiple(filters, b.onMessage)
		})
	b.client = paho.NewClient(opts)
	tok := b.client.Connect()
	if !tok.WaitTimeout(bridgeTimeout) || tok.Error() != nil {
		b.client.Disconnect(0)
		cancel()
		if tok.Error() != nil {
			return nil, tok.Error()
		}
		return nil, context.DeadlineExceeded
	}
	return b, nil
}

// onMessage takes a message from the remote broker for the mesh. paho
// calls it from its own goroutines; blocking here (no pending slot) holds
// the remote broker back.
func (b *bridge) onMessage(_ paho.Client, m paho.Message) {
	g := b.g
	if LooksWrapped(m.Payload()) {
		if _, err := DecodeWrapper(m.Payload()); err == nil {
			g.counts.add(countEcho)
			m.Ack()
			return
		}
	}
	meshTopic := g.cfg.toMesh(m.Topic())
	if meshTopic == "" {
		g.counts.add(countUnmapped)
		m.Ack()
		return
	}
	it := &item{entry: Entry{Time: g.now(), ClientID: g.cfg.BridgeClientID, Topic: m.Topic(), Payload: m.Payload()}, qos: m.Qos(), ack: m.Ack}
	if m.Retained() {
		it.entry.Flags |= FlagRetain
	}
	if it.qos > 0 {
		it.qos = 1
		it.entry.Flags |= FlagQoS1
		it.entry.PacketID = m.MessageID()
		it.key = dedupeKey(it.entry.ClientID, m.MessageID())
	} else {
		m.Ack()
	}
	g.take(b.ctx, meshTopic, it, m.Duplicate())
}

// publish hands a mesh message, wrapped, to paho for the remote broker
// (QoS 1: paho keeps it until the broker acknowledges it, across
// reconnections). Waiting for each token would cost a goroutine per
// message; paho reports a failed connection through its reconnects.
//
// paho refuses a message at once when all 65,535 packet IDs of the
// connection wait for the broker's acknowledgement, and after 30 s when
// it cannot queue it: then the token is done with an error, and the drop
// is counted.
func (b *bridge) publish(d Delivered, retain bool) {
	tok := b.client.Publish(d.Topic, 1, retain, EncodeWrapper(d))
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			b.g.counts.add(countBridgeDropped)
			b.g.logger().Warn("mqtt: the bridged broker did not take a message", "topic", d.Topic, "err", err)
			return
		}
	default: // sent or stored: paho resends it until the broker acknowledges it
	}
	b.g.counts.add(countDelivered)
}

func (b *bridge) close() {
	b.cancel()
	b.client.Disconnect(250)
}

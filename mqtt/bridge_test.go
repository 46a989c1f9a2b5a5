package mqtt

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/internal/testwait"
)

// readMQTTPacket reads one MQTT packet: its type byte and body.
func readMQTTPacket(r io.Reader) (byte, []byte, error) {
	var hdr [1]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n, shift := 0, 0
	for {
		var b [1]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n |= int(b[0]&0x7f) << shift
		if b[0]&0x80 == 0 {
			break
		}
		if shift += 7; shift > 21 {
			return 0, nil, errors.New("remaining length too long")
		}
	}
	body := make([]byte, n)
	_, err := io.ReadFull(r, body)
	return hdr[0], body, err
}

// silentBroker accepts one MQTT client, acknowledges its CONNECT,
// SUBSCRIBEs and PINGREQs, and takes every PUBLISH without ever
// acknowledging one: a remote broker that stopped taking messages.
func silentBroker(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for {
			typ, body, err := readMQTTPacket(c)
			if err != nil {
				return
			}
			switch typ >> 4 {
			case 1: // CONNECT
				c.Write([]byte{0x20, 0x02, 0x00, 0x00})
			case 8: // SUBSCRIBE: grant QoS 1 to each filter
				ack := []byte{0x90, 0x00, body[0], body[1]}
				for i := 2; i+2 <= len(body); {
					i += 2 + int(body[i])<<8 | int(body[i+1])
					ack, i = append(ack, 0x01), i+1
				}
				ack[1] = byte(len(ack) - 2)
				c.Write(ack)
			case 12: // PINGREQ
				c.Write([]byte{0xd0, 0x00})
			}
		}
	}()
	return ln.Addr().String()
}

// TestBridgeDropsCounted: a remote broker that stops acknowledging holds
// every message paho sent it, up to the 65,535 packet IDs of one MQTT
// connection. paho then refuses each further message at once; the gateway
// counts each dropped_bridge_publish instead of as delivered.
func TestBridgeDropsCounted(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Listen, cfg.Bridge = "", "tcp://"+silentBroker(t)
	g := startGateway(t, cfg, "", nil)
	const beyond = 100
	total := 1<<16 - 1 + beyond
	for i := range total {
		g.gw.deliverLocal(Delivered{Topic: "t", Payload: fmt.Appendf(nil, "%d", i), Entry: -1, Time: time.Now()}, false)
	}
	testwait.For(t, 10*time.Second, 10*time.Millisecond, func() error {
		st := g.gw.Stats()
		if st[countDelivered]+st[countBridgeDropped] != uint64(total) {
			return fmt.Errorf("delivered %d, dropped %d of %d", st[countDelivered], st[countBridgeDropped], total)
		}
		return nil
	})
	if n := g.gw.Stats()[countBridgeDropped]; n < beyond || n > beyond+1 { // +1: the SUBSCRIBE may still hold an ID
		t.Fatalf("%d messages counted dropped, want %d", n, beyond)
	}
}

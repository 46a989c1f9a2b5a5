package mqtt

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"

	"github.com/bitmesh/bitmesh/internal/testwait"
)

// mqttConnect opens a raw MQTT 3.1.1 connection as client id (clean or
// persistent session), subscribes to filter at QoS 1 when filter is not
// empty, and returns the connection after CONNACK and SUBACK.
func mqttConnect(t *testing.T, addr, id string, clean bool, filter string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	flags := byte(0x00)
	if clean {
		flags = 0x02
	}
	connect := append([]byte{0x10, byte(12 + len(id)), 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, flags, 0x00, 0x3c, 0x00, byte(len(id))}, id...)
	if _, err := c.Write(connect); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("client %s: CONNACK % x, %v", id, ack, err)
	}
	if filter != "" {
		sub := append([]byte{0x82, byte(2 + 2 + len(filter) + 1), 0x00, 0x01, 0x00, byte(len(filter))}, filter...)
		if _, err := c.Write(append(sub, 0x01)); err != nil {
			t.Fatal(err)
		}
		suback := make([]byte, 5)
		if _, err := io.ReadFull(c, suback); err != nil || suback[0] != 0x90 || suback[4] != 0x01 {
			t.Fatalf("client %s: SUBACK % x, %v", id, suback, err)
		}
	}
	return c
}

// startBoundedGateway starts a gateway whose broker listens on a free
// loopback port, with the bounds mod sets.
func startBoundedGateway(t *testing.T, mod func(*Config)) (testGateway, *mochi.Server) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	mod(&cfg)
	g := startGateway(t, cfg, "", nil)
	return g, g.gw.srv
}

// sessionBounds is the small session bound and short expiry that the
// session and will tests run against.
var sessionBounds = Config{MaxClients: 10, SessionExpiry: 2 * time.Second}

func startSessionGateway(t *testing.T) (testGateway, *mochi.Server) {
	t.Helper()
	return startBoundedGateway(t, func(c *Config) { c.MaxClients, c.SessionExpiry = sessionBounds.MaxClients, sessionBounds.SessionExpiry })
}

// TestPersistentSessionFloodBounded: a local client opens persistent
// sessions under ever new client IDs, each subscribed to everything, and
// goes away. Without bounds each session would stay for good, and every
// mesh message would be copied into each one's queue. The broker keeps at
// most MaxClients sessions (the oldest disconnected one goes first,
// counted), drops a disconnected session and its subscriptions once
// SessionExpiry has passed, and a connected subscriber keeps getting its
// messages throughout.
func TestPersistentSessionFloodBounded(t *testing.T) {
	cfg := sessionBounds
	g, srv := startSessionGateway(t)

	live := mqttConnect(t, g.gw.Addr(), "live", true, "t")
	defer live.Close()
	const flood = 40
	for i := range flood {
		c := mqttConnect(t, g.gw.Addr(), fmt.Sprintf("f%03d", i), false, "#")
		c.Write([]byte{0xe0, 0x00}) // DISCONNECT: the session stays
		c.Close()
		testwait.For(t, 5*time.Second, 5*time.Millisecond, func() error {
			if cl, ok := srv.Clients.Get(fmt.Sprintf("f%03d", i)); ok && cl.StopTime() == 0 {
				return fmt.Errorf("flood client %d still connected", i)
			}
			return nil
		})
		if n := srv.Clients.Len() - 1; n > cfg.MaxClients { // less the inline client
			t.Fatalf("after %d flood sessions the broker holds %d sessions, bound %d", i+1, n, cfg.MaxClients)
		}
	}
	if _, ok := srv.Clients.Get("live"); !ok {
		t.Fatal("the connected subscriber's session was evicted")
	}
	st := g.gw.Stats()
	if want := uint64(flood - (cfg.MaxClients - 1)); st[countSessionsEvicted] != want {
		t.Fatalf("%d sessions evicted, want %d", st[countSessionsEvicted], want)
	}

	// A mesh message reaches the live subscriber, and is queued for at
	// most the sessions the bound left.
	g.gw.deliverLocal(Delivered{Topic: "t", Payload: []byte("hello"), Entry: -1, Time: time.Now()}, false)
	live.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(live, hdr); err != nil || hdr[0]&0xf0 != 0x30 {
		t.Fatalf("live subscriber: % x, %v", hdr, err)
	}

	// Past the expiry every disconnected session is gone, and so are its
	// subscriptions: the message tree holds the live one only.
	testwait.For(t, 10*time.Second, 50*time.Millisecond, func() error {
		if n := srv.Clients.Len() - 1; n != 1 {
			return fmt.Errorf("%d sessions, want only the connected one", n)
		}
		if subs := srv.Topics.Subscribers("t").Subscriptions; len(subs) != 1 {
			return fmt.Errorf("%d subscriptions match t, want 1", len(subs))
		}
		return nil
	})
	if st := g.gw.Stats(); st[countSessionsExpired] != uint64(cfg.MaxClients-1) {
		t.Fatalf("%d sessions expired, want %d", st[countSessionsExpired], cfg.MaxClients-1)
	}
}

// TestSubscriptionFloodBounded: a client subscribes to ever new filters,
// many to a SUBSCRIBE. mochi sets no bound, and each filter stays in the
// topic tree for as long as the session. The gateway holds a client to
// MaxSubscriptions: the SUBSCRIBE that would pass it adds nothing, and the
// client is disconnected and counted. Other clients keep subscribing.
func TestSubscriptionFloodBounded(t *testing.T) {
	cfg := Config{MaxSubscriptions: 100}
	g, srv := startBoundedGateway(t, func(c *Config) { c.MaxSubscriptions = cfg.MaxSubscriptions })

	c := mqttConnect(t, g.gw.Addr(), "flood", false, "")
	defer c.Close()
	const perPacket = 30
	var cut error
	for p := 0; p < 10 && cut == nil; p++ {
		body := []byte{0x00, byte(p + 1)} // packet ID
		for i := range perPacket {
			f := fmt.Sprintf("x/%02d/%02d", p, i)
			body = append(append(append(body, 0x00, byte(len(f))), f...), 0x01)
		}
		rl := len(body) // remaining length, 7 bits a byte
		pkt := []byte{0x82, byte(rl&0x7f) | 0x80, byte(rl >> 7)}
		if _, err := c.Write(append(pkt, body...)); err != nil {
			cut = err
			break
		}
		suback := make([]byte, 4+perPacket)
		_, cut = io.ReadFull(c, suback)
	}
	if cut == nil {
		t.Fatal("the client subscribed to 300 filters and is still connected")
	}
	cl, ok := srv.Clients.Get("flood")
	if !ok {
		t.Fatal("the persistent session is gone")
	}
	if n := cl.State.Subscriptions.Len(); n > cfg.MaxSubscriptions {
		t.Fatalf("the client holds %d filters, bound %d", n, cfg.MaxSubscriptions)
	}
	if st := g.gw.Stats(); st[countSubscriptionLimit] != 1 {
		t.Fatalf("%d refusals counted, want 1", st[countSubscriptionLimit])
	}
	// A client within the bound is served as before.
	other := mqttConnect(t, g.gw.Addr(), "other", true, "t")
	defer other.Close()
	g.gw.deliverLocal(Delivered{Topic: "t", Payload: []byte("hello"), Entry: -1, Time: time.Now()}, false)
	other.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(other, hdr); err != nil || hdr[0]&0xf0 != 0x30 {
		t.Fatalf("subscriber within the bound: % x, %v", hdr, err)
	}
}

// TestRetainedFloodBounded: a client publishes retained messages on ever
// new topics the mesh does not take (so the broker keeps them itself).
// mochi keeps every one for a day. The gateway keeps at most MaxRetained
// topics: a new one beyond is not kept, and counted; a topic already kept
// is still updated.
func TestRetainedFloodBounded(t *testing.T) {
	cfg := Config{MaxRetained: 20}
	g, srv := startBoundedGateway(t, func(c *Config) { c.MaxRetained = cfg.MaxRetained })

	c := mqttConnect(t, g.gw.Addr(), "retainer", true, "")
	defer c.Close()
	publishRetained := func(topic, payload string) {
		body := append(append([]byte{0x00, byte(len(topic))}, topic...), payload...)
		if _, err := c.Write(append([]byte{0x31, byte(len(body))}, body...)); err != nil { // QoS 0, retain
			t.Fatal(err)
		}
	}
	// "$local/…" never maps to the mesh: the broker keeps it.
	for i := range 50 {
		publishRetained(fmt.Sprintf("$local/%02d", i), "v1")
	}
	publishRetained("$local/00", "v2") // an update of a kept topic
	testwait.For(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := g.gw.Stats()[countRetainedLimit]; n != 30 {
			return fmt.Errorf("%d retained messages refused, want 30", n)
		}
		return nil
	})
	kept := 0
	for topic := range srv.Topics.Retained.GetAll() {
		if !strings.HasPrefix(topic, "$SYS/") { // the broker's own
			kept++
		}
	}
	if kept != cfg.MaxRetained {
		t.Fatalf("%d retained messages kept, want %d", kept, cfg.MaxRetained)
	}
	testwait.For(t, 5*time.Second, 10*time.Millisecond, func() error {
		if pk, ok := srv.Topics.Retained.Get("$local/00"); !ok || string(pk.Payload) != "v2" {
			return fmt.Errorf("kept topic not updated: %q, %v", pk.Payload, ok)
		}
		return nil
	})
	if _, ok := srv.Topics.Retained.Get("$local/20"); ok {
		t.Fatal("a topic beyond the bound was kept")
	}
	// Clearing a kept topic (an empty retained message) frees its place.
	publishRetained("$local/01", "")
	publishRetained("$local/99", "v1")
	testwait.For(t, 5*time.Second, 10*time.Millisecond, func() error {
		if _, ok := srv.Topics.Retained.Get("$local/99"); !ok {
			return errors.New("a topic was not kept after another was cleared")
		}
		return nil
	})
}

// connectWithWill opens an MQTT 5 connection as client id with a session
// expiry of expiry seconds and a will on topic delayed by delay seconds,
// then drops the connection without a DISCONNECT, which sends the will.
func connectWithWill(t *testing.T, addr, id, topic string, expiry, delay uint32) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	be32 := func(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	body := []byte{0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x06, 0x00, 0x3c} // will flag, clean start, keepalive 60
	body = append(append(body, 0x05, 0x11), be32(expiry)...)               // session expiry interval
	body = append(body, str(id)...)
	body = append(append(body, 0x05, 0x18), be32(delay)...) // will delay interval
	body = append(append(body, str(topic)...), str("gone")...)
	if _, err := c.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(c, hdr); err != nil || hdr[0] != 0x20 {
		t.Fatalf("client %s: CONNACK % x, %v", id, hdr, err)
	}
	rest := make([]byte, hdr[1])
	if _, err := io.ReadFull(c, rest); err != nil || rest[1] != 0 {
		t.Fatalf("client %s: CONNACK % x, %v", id, rest, err)
	}
}

// TestDelayedWillsBounded: MQTT 5 clients under new client IDs ask for
// the longest session and leave wills delayed by 136 years. mochi grants
// the session SessionExpiry but keeps each will until its own delay
// passes, long after the session ended (which MQTT 5 says ends the wait).
// The gateway caps a will's delay at its session's granted expiry and
// keeps at most MaxClients wills waiting; a will beyond is published at
// once, counted.
func TestDelayedWillsBounded(t *testing.T) {
	cfg := sessionBounds
	g, srv := startSessionGateway(t)
	watch := mqttConnect(t, g.gw.Addr(), "watch", true, "will/#")
	defer watch.Close()
	const leavers = 30
	start := time.Now()
	for i := range leavers {
		connectWithWill(t, g.gw.Addr(), fmt.Sprintf("w%03d", i), fmt.Sprintf("will/%02d", i), math.MaxUint32, math.MaxUint32)
		// The next may connect once the broker has seen this one go:
		// MaxClients also bounds connected clients.
		testwait.For(t, 5*time.Second, time.Millisecond, func() error {
			if n := atomic.LoadInt64(&srv.Info.ClientsConnected); n > 1 {
				return fmt.Errorf("%d clients connected", n)
			}
			return nil
		})
	}
	// Every will arrives: those beyond the bound at once, the others once
	// their 2 s sessions have ended.
	watch.SetReadDeadline(time.Now().Add(15 * time.Second))
	got := map[string]bool{}
	for len(got) < leavers {
		hdr := make([]byte, 2)
		if _, err := io.ReadFull(watch, hdr); err != nil {
			t.Fatalf("after %d of %d wills: %v", len(got), leavers, err)
		}
		pk := make([]byte, hdr[1])
		if _, err := io.ReadFull(watch, pk); err != nil {
			t.Fatal(err)
		}
		if hdr[0]&0xf0 == 0x30 {
			got[string(pk[2:2+int(pk[1])])] = true
		}
	}
	t.Logf("%d wills in %v", leavers, time.Since(start).Round(100*time.Millisecond))
	if n := g.gw.Stats()[countWillsEarly]; n != leavers-uint64(cfg.MaxClients) {
		t.Fatalf("%d wills published early, want %d", n, leavers-cfg.MaxClients)
	}
}

// TestSilentConnectionsBounded: anyone who reaches the broker's port opens
// connections and sends nothing. mochi would wait for each one's CONNECT
// for ever, holding a socket and two goroutines. The gateway closes a
// connection that sends no CONNECT within ConnectTimeout, and closes at
// once one beyond MaxClients waiting; each is counted, and a client that
// does connect keeps its connection past the timeout.
func TestSilentConnectionsBounded(t *testing.T) {
	cfg := Config{MaxClients: 5, ConnectTimeout: 3 * time.Second} // the check at the bound must come before it
	g, _ := startBoundedGateway(t, func(c *Config) { c.MaxClients, c.ConnectTimeout = cfg.MaxClients, cfg.ConnectTimeout })
	live := mqttConnect(t, g.gw.Addr(), "live", true, "")
	defer live.Close()

	silent := make([]net.Conn, cfg.MaxClients)
	for i := range silent {
		c, err := net.Dial("tcp", g.gw.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent[i] = c
	}
	testwait.For(t, 5*time.Second, 5*time.Millisecond, func() error {
		// One more while all the slots are taken: closed at once.
		c, err := net.Dial("tcp", g.gw.Addr())
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			return fmt.Errorf("connection beyond the bound: read %v, want EOF", err)
		}
		return nil
	})
	if n := g.gw.Stats()[countConnectingFull]; n < 1 {
		t.Fatalf("%d connections refused at the bound, want at least 1", n)
	}
	// The silent ones are closed once the timeout has passed.
	for i, c := range silent {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("silent connection %d: read %v, want EOF from the broker", i, err)
		}
	}
	testwait.For(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := g.gw.Stats()[countConnectTimeout]; n != uint64(cfg.MaxClients) {
			return fmt.Errorf("%d connections timed out, want %d", n, cfg.MaxClients)
		}
		return nil
	})
	// The client that connected is still served: PINGREQ, PINGRESP.
	if _, err := live.Write([]byte{0xc0, 0x00}); err != nil {
		t.Fatal(err)
	}
	live.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp := make([]byte, 2)
	if _, err := io.ReadFull(live, resp); err != nil || resp[0] != 0xd0 {
		t.Fatalf("PINGRESP % x, %v", resp, err)
	}
	// And a new client connects once the slots are free.
	mqttConnect(t, g.gw.Addr(), "late", true, "").Close()
}

package mqtt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"

	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/node/ext"
)

// maxReceive bounds the unacknowledged QoS 1 and 2 messages a client may
// send the broker (MQTT 5 receive maximum).
const maxReceive = 1024

// brokerLogEvery is how often the broker may log one message.
const brokerLogEvery = 10 * time.Second

// startBroker starts the embedded mochi broker on cfg.Listen with the
// gateway's hook. Called with g.mu held.
func (g *Gateway) startBroker(log *slog.Logger) error {
	caps := mochi.NewDefaultServerCapabilities()
	// The largest packet: the payload, its topic and the headers around.
	caps.MaximumPacketSize = uint32(g.cfg.MaxPayload + MaxMQTTTopicLen + 1024)
	caps.MaximumClients = int64(g.cfg.MaxClients)
	// A subscriber that does not acknowledge holds at most MaxQueued QoS 1
	// and 2 messages, and one that does not read at most MaxQueued in its
	// write queue: mochi keeps no queue behind either, so a message beyond
	// is dropped and counted. The write queue is allocated whole for every
	// client (8 bytes a slot; mochi's default of 8192 is 64 KiB a sensor).
	caps.MaximumInflight = uint16(g.cfg.MaxQueued)
	caps.MaximumClientWritesPending = int32(g.cfg.MaxQueued)
	caps.ReceiveMaximum = maxReceive
	caps.MaximumSessionExpiryInterval = uint32(g.cfg.SessionExpiry / time.Second)
	srv := mochi.New(&mochi.Options{
		Capabilities: caps, InlineClient: true,
		// The broker logs every connection at info; only its warnings
		// and errors reach the node's log (the gateway logs refusals),
		// each message at most once per brokerLogEvery.
		Logger: slog.New(newBrokerLog(log.Handler(), slog.LevelWarn, brokerLogEvery)).With("component", "mqtt-broker"),
	})
	if err := srv.AddHook(&hook{g: g, srv: srv, retained: map[string]struct{}{}, wills: map[string]time.Time{}}, nil); err != nil {
		return err
	}
	var tlsCfg *tls.Config
	if g.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(g.cfg.TLSCert, g.cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("%w: TLS: %v", ErrConfig, err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln := &listener{id: "bitmesh", address: g.cfg.Listen, tls: tlsCfg, g: g, connecting: make(chan struct{}, g.cfg.MaxClients)}
	if err := srv.AddListener(ln); err != nil {
		return fmt.Errorf("mqtt: listen on %s: %w", g.cfg.Listen, err)
	}
	// mochi's own inline client has no protocol version; ours is MQTT 5
	// so that user properties survive to 5.0 subscribers.
	inline := srv.NewClient(nil, "local", inlineClientID, true)
	inline.Properties.ProtocolVersion = 5
	if err := srv.Serve(); err != nil {
		return err
	}
	g.srv, g.inline, g.addr = srv, inline, ln.Address()
	return nil
}

// hook is the gateway inside the broker: authentication, ACLs, the
// publish path to the mesh and the 3.1.1 wrapper.
type hook struct {
	mochi.HookBase
	g   *Gateway
	srv *mochi.Server

	sessMu sync.Mutex // serialises evictions

	retMu    sync.Mutex
	retained map[string]struct{} // topics with a retained message, $SYS/ aside

	willMu sync.Mutex
	wills  map[string]time.Time // client ID → when its delayed will is due

	authSem  chan struct{} // bounds concurrent bcrypt checks
	verified sync.Map      // user + sha256(password) → true, for passwords checked once
	once     sync.Once
}

func (h *hook) ID() string { return "bitmesh-gateway" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnPublish,
		mochi.OnPacketEncode, mochi.OnSubscribed, mochi.OnPublishDropped,
		mochi.OnSessionEstablished, mochi.OnClientExpired, mochi.OnSubscribe, mochi.OnRetainMessage,
		mochi.OnRetainedExpired, mochi.OnWill}, []byte{b})
}

// OnWill bounds the wills that wait out a delay (MQTT 5). mochi caps a
// will's delay at the session expiry the client asked for, but not at the
// one the broker granted (SessionExpiry), nor at 0 when the client asked
// for none; so a will could wait 136 years after its session ended, which
// MQTT 5 says ends the wait. The delay is capped at the session's granted
// expiry, and at most MaxClients wills wait at once: beyond, a will is
// published now, counted. mochi takes the delay from the client, not from
// the will this returns.
func (h *hook) OnWill(cl *mochi.Client, will mochi.Will) (mochi.Will, error) {
	d := cl.Properties.Will.WillDelayInterval
	if d == 0 {
		return will, nil
	}
	var expiry uint32 // absent: 0, the session ends with the connection
	if cl.Properties.Props.SessionExpiryIntervalFlag {
		expiry = cl.Properties.Props.SessionExpiryInterval // as granted at connect
	}
	d = min(d, expiry)
	now := time.Now()
	h.willMu.Lock()
	defer h.willMu.Unlock()
	if len(h.wills) >= h.g.cfg.MaxClients {
		for id, at := range h.wills {
			if !at.After(now) {
				delete(h.wills, id)
			}
		}
	}
	if _, waiting := h.wills[cl.ID]; d > 0 && !waiting && len(h.wills) >= h.g.cfg.MaxClients {
		d = 0
		h.g.counts.add(countWillsEarly)
	}
	if d > 0 {
		h.wills[cl.ID] = now.Add(time.Duration(d) * time.Second)
	}
	cl.Properties.Will.WillDelayInterval = d
	return will, nil
}

// forgetWill drops a waiting will's place: its client is back, and mochi
// dropped the will.
func (h *hook) forgetWill(id string) {
	h.willMu.Lock()
	defer h.willMu.Unlock()
	delete(h.wills, id)
}

// OnRetainMessage keeps the broker's retained messages to MaxRetained
// topics: mochi keeps each for a day whatever their number, and a client
// (or, through a wildcard mapping, a mesh publisher) can retain on ever new
// topics. A new topic beyond the bound is let go as soon as it is stored;
// a kept topic is still updated. The broker's own $SYS topics do not
// count.
func (h *hook) OnRetainMessage(cl *mochi.Client, pk packets.Packet, r int64) {
	t := pk.TopicName
	if strings.HasPrefix(t, "$SYS/") {
		return
	}
	h.retMu.Lock()
	defer h.retMu.Unlock()
	switch _, kept := h.retained[t]; {
	case r == -1:
		delete(h.retained, t)
	case r != 1 || kept:
	case len(h.retained) < h.g.cfg.MaxRetained:
		h.retained[t] = struct{}{}
	default:
		// An empty retained message clears the topic (MQTT-3.3.1-6).
		h.srv.Topics.RetainMessage(packets.Packet{TopicName: t})
		h.g.counts.add(countRetainedLimit)
		h.g.logger().Warn("mqtt: retained message limit reached, message delivered but not kept",
			"client", cl.ID, "topic", t, "max_retained", h.g.cfg.MaxRetained)
	}
}

// OnRetainedExpired forgets a retained topic mochi let go.
func (h *hook) OnRetainedExpired(topic string) {
	h.retMu.Lock()
	defer h.retMu.Unlock()
	delete(h.retained, topic)
}

// OnSubscribe holds a client to MaxSubscriptions filters: mochi sets no
// bound, and each filter stays in the topic tree for the session's life.
// A SUBSCRIBE that would pass the bound adds nothing and the client is
// disconnected (MQTT 5: quota exceeded), so one packet cannot be retried
// into more.
func (h *hook) OnSubscribe(cl *mochi.Client, pk packets.Packet) packets.Packet {
	n := cl.State.Subscriptions.Len()
	for _, f := range pk.Filters {
		if _, ok := cl.State.Subscriptions.Get(f.Filter); !ok {
			n++
		}
	}
	if cl.Net.Inline || n <= h.g.cfg.MaxSubscriptions {
		return pk
	}
	h.g.counts.add(countSubscriptionLimit)
	h.g.logger().Warn("mqtt: subscription limit reached, client disconnected",
		"client", cl.ID, "user", string(cl.Properties.Username), "max_subscriptions", h.g.cfg.MaxSubscriptions)
	_ = h.srv.DisconnectClient(cl, packets.ErrQuotaExceeded)
	pk.Filters = nil
	return pk
}

// OnSessionEstablished keeps the broker's sessions within MaxClients:
// mochi bounds only the connected ones, so a client could otherwise leave
// persistent sessions under ever new client IDs, each subscribed and
// queueing messages until it expires. Beyond the bound the disconnected
// session that has waited longest goes; a connected one never does (the
// MaximumClients check refuses connections when all are).
func (h *hook) OnSessionEstablished(cl *mochi.Client, _ packets.Packet) {
	h.forgetWill(cl.ID)
	h.sessMu.Lock()
	defer h.sessMu.Unlock()
	for h.sessions() > h.g.cfg.MaxClients {
		var oldest *mochi.Client
		for _, c := range h.srv.Clients.GetAll() {
			if t := c.StopTime(); t > 0 && (oldest == nil || t < oldest.StopTime()) {
				oldest = c
			}
		}
		if oldest == nil {
			return
		}
		h.endSession(oldest)
		h.g.counts.add(countSessionsEvicted)
		h.g.logger().Warn("mqtt: session limit reached, ended the longest-disconnected session",
			"client", oldest.ID, "for", cl.ID, "max_clients", h.g.cfg.MaxClients)
	}
}

// OnClientExpired ends a session past SessionExpiry. mochi deletes the
// client but leaves its subscriptions in the topic tree.
func (h *hook) OnClientExpired(cl *mochi.Client) {
	h.endSession(cl)
	h.g.counts.add(countSessionsExpired)
}

// sessions counts the broker's client sessions: its own inline client
// is one of srv.Clients.
func (h *hook) sessions() int { return h.srv.Clients.Len() - 1 }

// endSession removes a disconnected session and its subscriptions, unless
// its client has come back meanwhile (then the ID names the new session).
func (h *hook) endSession(cl *mochi.Client) {
	h.srv.UnsubscribeClient(cl) // nothing if taken over
	if cur, ok := h.srv.Clients.Get(cl.ID); ok && cur == cl {
		h.srv.Clients.Delete(cl.ID)
	}
}

// maxConcurrentBcrypt bounds the CPU a connection flood can spend on
// password checks; the rest queue.
const maxConcurrentBcrypt = 2

// OnConnectAuthenticate lets in a client with a known user's password,
// or one without credentials from a loopback address.
func (h *hook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	h.once.Do(func() { h.authSem = make(chan struct{}, maxConcurrentBcrypt) })
	g := h.g
	name, pass := string(pk.Connect.Username), pk.Connect.Password
	if name == "" && len(pass) == 0 {
		if isLoopback(cl.Net.Remote) {
			return true
		}
		g.counts.add(countAuthAnonymous)
		g.logger().Warn("mqtt: anonymous client refused outside loopback", "client", cl.ID, "remote", cl.Net.Remote)
		return false
	}
	u := g.user(name)
	if u == nil {
		g.counts.add(countAuthUnknown)
		g.logger().Warn("mqtt: unknown user refused", "user", name, "client", cl.ID, "remote", cl.Net.Remote)
		return false
	}
	sum := sha256.Sum256(append([]byte(name+"\x00"), pass...))
	if _, ok := h.verified.Load(sum); ok {
		return true
	}
	h.authSem <- struct{}{}
	err := bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), pass)
	<-h.authSem
	if err != nil {
		g.counts.add(countAuthPassword)
		g.logger().Warn("mqtt: bad password refused", "user", name, "client", cl.ID, "remote", cl.Net.Remote)
		return false
	}
	h.verified.Store(sum, true)
	return true
}

func (g *Gateway) user(name string) *User {
	for i := range g.cfg.Users {
		if g.cfg.Users[i].Name == name {
			return &g.cfg.Users[i]
		}
	}
	return nil
}

// OnACLCheck: anonymous (loopback) clients may do anything but publish
// on the receipt topics; users what their filters allow.
func (h *hook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	g := h.g
	refuse := func() bool {
		if write {
			g.counts.add(countACLPublish)
		} else {
			g.counts.add(countACLSubscribe)
		}
		g.logger().Warn("mqtt: ACL refused", "client", cl.ID, "user", string(cl.Properties.Username), "topic", topic, "publish", write)
		return false
	}
	if write && len(topic) >= len(ReceiptTopicPrefix) && topic[:len(ReceiptTopicPrefix)] == ReceiptTopicPrefix {
		return refuse()
	}
	name := string(cl.Properties.Username)
	if name == "" {
		return true // authenticated as anonymous: loopback only
	}
	u := g.user(name)
	if u == nil {
		return refuse()
	}
	filters := u.Subscribe
	if write {
		filters = u.Publish
	}
	for _, f := range filters {
		if write && matchFilter(f, topic) || !write && (matchFilter(f, topic) || f == topic || filterCovers(f, topic)) {
			return true
		}
	}
	return refuse()
}

// filterCovers reports whether every topic sub matches also matches f.
func filterCovers(f, sub string) bool {
	return matchFilter(f, sub) // a wildcard in sub is a literal level to f's + and #
}

// OnPublish takes a client's publish for the mesh. The broker then does
// nothing more with it (ErrRejectPacket): the gateway acknowledges a QoS 1
// message once its batch is durable and published, and delivers it to the
// broker's own subscribers then, with the signer.
func (h *hook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	g := h.g
	if cl.Net.Inline {
		return pk, nil // the gateway's own delivery of mesh messages
	}
	if LooksWrapped(pk.Payload) {
		if _, err := DecodeWrapper(pk.Payload); err == nil {
			g.counts.add(countEcho)
			return pk, nil // came from the mesh: local delivery only
		}
	}
	meshTopic := g.cfg.toMesh(pk.TopicName)
	if meshTopic == "" {
		g.counts.add(countUnmapped)
		return pk, nil
	}
	it := &item{
		entry: Entry{Time: g.now(), PacketID: pk.PacketID, ClientID: cl.ID, Topic: pk.TopicName, Payload: pk.Payload},
		qos:   pk.FixedHeader.Qos, cl: cl, v5: cl.Properties.ProtocolVersion == 5,
	}
	if len(it.entry.ClientID) > MaxClientIDLen {
		it.entry.ClientID = it.entry.ClientID[:MaxClientIDLen]
	}
	if pk.FixedHeader.Retain {
		it.entry.Flags |= FlagRetain
	}
	if it.qos > 0 {
		// QoS 2 is acknowledged (PUBREC) once durable, like QoS 1; the
		// dedupe of retries gives it exactly-once on the mesh.
		it.qos2 = it.qos == 2
		it.qos = 1
		it.entry.Flags |= FlagQoS1
		it.key = dedupeKey(cl.ID, pk.PacketID)
	} else {
		it.entry.PacketID = 0
	}
	if g.forwardEnvelope(cl, pk, meshTopic) {
		return pk, packets.ErrRejectPacket
	}
	g.mu.Lock()
	ctx := g.ctx
	g.mu.Unlock()
	// Not taken only when the gateway closes: then not acknowledged, and
	// the device sends it again to the next run.
	g.take(ctx, meshTopic, it, pk.FixedHeader.Dup)
	return pk, packets.ErrRejectPacket
}

// forwardEnvelope publishes a payload that is a bitmesh envelope for
// meshTopic, signed by the device itself, unchanged: its end-to-end
// signature survives the gateway. It reports whether the payload was one.
func (g *Gateway) forwardEnvelope(cl *mochi.Client, pk packets.Packet, meshTopic string) bool {
	env, err := gossip.Decode(pk.Payload)
	if err != nil || env.Topic != meshTopic {
		return false
	}
	h, err := g.running()
	if err != nil {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = h.PublishSealed(ctx, meshTopic, pk.Payload)
	v5 := cl.Properties.ProtocolVersion == 5
	switch {
	case err != nil:
		g.counts.add(countMeshRefused)
		g.logger().Warn("mqtt: device envelope refused", "client", cl.ID, "topic", meshTopic, "err", err)
		if pk.FixedHeader.Qos > 0 && v5 {
			g.writeAck(cl, pk.PacketID, true, pk.FixedHeader.Qos == 2, packets.ErrPayloadFormatInvalid)
		} else if pk.FixedHeader.Qos > 0 && g.srv != nil {
			_ = g.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
		}
	default:
		g.counts.add(countForwarded)
		if pk.FixedHeader.Qos > 0 {
			g.writeAck(cl, pk.PacketID, v5, pk.FixedHeader.Qos == 2, packets.CodeSuccess)
		}
		g.deliverLocal(Delivered{Topic: pk.TopicName, Payload: env.Payload, Signer: env.Sender.String(),
			Envelope: gossip.MessageID(pk.Payload).String(), Entry: -1, Time: env.Time}, pk.FixedHeader.Retain)
	}
	return true
}

// OnPacketEncode gives MQTT 3.1.1 subscribers the JSON wrapper in place of
// a mesh message's bare payload: they cannot receive user properties.
func (h *hook) OnPacketEncode(cl *mochi.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Publish || cl.Properties.ProtocolVersion >= 5 || len(pk.Properties.User) == 0 {
		return pk
	}
	d, ok := deliveredFromProps(pk)
	if !ok {
		return pk
	}
	pk.Payload = EncodeWrapper(d)
	return pk
}

// OnSubscribed subscribes the gateway to the mesh topics a client's new
// subscription needs.
func (h *hook) OnSubscribed(cl *mochi.Client, pk packets.Packet, codes []byte) {
	for i, f := range pk.Filters {
		if i < len(codes) && codes[i] >= 0x80 {
			continue
		}
		for _, t := range h.g.cfg.meshTopicsFor(f.Filter) {
			if err := h.g.subscribeMesh(t); err != nil {
				h.g.logger().Warn("mqtt: cannot subscribe to the mesh topic", "topic", t, "err", err)
			}
		}
	}
}

// OnPublishDropped counts a message the broker could not queue for a slow
// subscriber.
func (h *hook) OnPublishDropped(cl *mochi.Client, pk packets.Packet) {
	h.g.counts.add(countSlowSub)
}

func deliveredFromProps(pk packets.Packet) (Delivered, bool) {
	d := Delivered{Topic: pk.TopicName, Payload: pk.Payload, Entry: -1}
	found := false
	for _, p := range pk.Properties.User {
		switch p.Key {
		case PropSigner:
			d.Signer, found = p.Val, true
		case PropClient:
			d.Client = p.Val
		case PropEnvelope:
			d.Envelope = p.Val
		case PropEntry:
			if n, err := strconv.Atoi(p.Val); err == nil {
				d.Entry = n
			}
		case PropTime:
			if t, err := time.Parse(time.RFC3339Nano, p.Val); err == nil {
				d.Time = t
			}
		}
	}
	return d, found
}

// deliverLocal publishes d to the embedded broker's subscribers (MQTT 5
// user properties; 3.1.1 clients get the wrapper) and through the bridge.
func (g *Gateway) deliverLocal(d Delivered, retain bool) {
	g.mu.Lock()
	srv, inline, br := g.srv, g.inline, g.bridge
	g.mu.Unlock()
	if br != nil {
		br.publish(d, retain)
	}
	if srv == nil {
		return
	}
	props := packets.Properties{User: []packets.UserProperty{
		{Key: PropSigner, Val: d.Signer}, {Key: PropEnvelope, Val: d.Envelope},
		{Key: PropTime, Val: d.Time.UTC().Format(time.RFC3339Nano)},
	}}
	if d.Client != "" {
		props.User = append(props.User, packets.UserProperty{Key: PropClient, Val: d.Client})
	}
	if d.Entry >= 0 {
		props.User = append(props.User, packets.UserProperty{Key: PropEntry, Val: strconv.Itoa(d.Entry)})
	}
	err := srv.InjectPacket(inline, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: retain},
		TopicName:   d.Topic, Payload: d.Payload, Properties: props, PacketID: 1,
	})
	if err == nil {
		g.counts.add(countDelivered)
	}
}

// subscribeMesh starts delivering a mesh topic's messages to MQTT.
func (g *Gateway) subscribeMesh(topic string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.subscribeMeshLocked(topic)
}

func (g *Gateway) subscribeMeshLocked(topic string) error {
	if g.closed || g.h == nil {
		return ErrClosed
	}
	if _, ok := g.meshSubs[topic]; ok {
		return nil
	}
	if len(g.meshSubs) >= g.cfg.MaxMeshTopics {
		g.counts.add(countMeshTopics)
		return fmt.Errorf("%w: already %d mesh topics (MaxMeshTopics)", ErrConfig, g.cfg.MaxMeshTopics)
	}
	cancel, err := g.h.Subscribe(topic, 4096, func(d ext.Delivery) { g.fromMesh(topic, d) })
	if err != nil {
		return err
	}
	g.meshSubs[topic] = cancel
	return nil
}

// fromMesh hands an accepted mesh envelope to MQTT: each entry of a batch
// on its own MQTT topic, any other payload whole. The gateway's own
// envelopes were delivered when they were published.
func (g *Gateway) fromMesh(topic string, d ext.Delivery) {
	if d.Local {
		return
	}
	env := d.Envelope
	signer := env.Sender.String()
	if !IsBatch(env.Payload) {
		t := g.cfg.toMQTT(topic, "")
		if t == "" {
			g.counts.add(countUnmapped)
			return
		}
		g.deliverLocal(Delivered{Topic: t, Payload: env.Payload, Signer: signer, Envelope: d.ID.String(), Entry: -1, Time: env.Time}, false)
		return
	}
	b, err := DecodeBatch(env.Payload)
	if err != nil {
		g.counts.add(countBadBatch)
		g.logger().Warn("mqtt: mesh batch does not decode", "topic", topic, "signer", signer, "err", err)
		return
	}
	for i, e := range b.Entries {
		t := g.cfg.toMQTT(topic, e.Topic)
		if t == "" {
			g.counts.add(countUnmapped)
			continue
		}
		g.deliverLocal(Delivered{Topic: t, Payload: e.Payload, Signer: signer, Client: e.ClientID, Envelope: d.ID.String(), Entry: i, Time: e.Time},
			e.Flags&FlagRetain != 0)
	}
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// listener is the broker's TCP (or TLS) listener. Unlike mochi's own it
// sees why each connection ended, so that refusals the broker makes
// itself (an oversized or malformed packet) are counted and logged.
type listener struct {
	id, address string
	tls         *tls.Config
	g           *Gateway

	ln  net.Listener
	end atomic.Bool
	wg  sync.WaitGroup
	log *slog.Logger

	connecting chan struct{} // a slot per connection waiting for its CONNECT
}

var _ listeners.Listener = (*listener)(nil)

func (l *listener) ID() string       { return l.id }
func (l *listener) Protocol() string { return "tcp" }
func (l *listener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.address
}

func (l *listener) Init(log *slog.Logger) error {
	l.log = log
	ln, err := net.Listen("tcp", l.address)
	if err != nil {
		return err
	}
	if l.tls != nil {
		ln = tls.NewListener(ln, l.tls)
	}
	l.ln = ln
	return nil
}

// Serve hands each connection to the broker, which would wait for ever
// for its CONNECT: anyone who reaches the port could hold sockets and
// goroutines by staying silent. A connection has ConnectTimeout to send
// it, and at most MaxClients wait at once; more are closed on accept.
func (l *listener) Serve(establish listeners.EstablishFn) {
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return
		}
		if l.end.Load() {
			conn.Close()
			return
		}
		select {
		case l.connecting <- struct{}{}:
		default:
			// Counted before the close, which the peer may see at once.
			l.g.counts.add(countConnectingFull)
			l.g.logger().Warn("mqtt: too many connections waiting for their CONNECT; closed", "remote", conn.RemoteAddr().String())
			conn.Close()
			continue
		}
		pc := &connectingConn{Conn: conn, release: func() { <-l.connecting }}
		pc.waiting.Store(true)
		_ = conn.SetDeadline(time.Now().Add(l.g.cfg.ConnectTimeout))
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			err := establish(l.id, pc)
			if pc.connected() && errors.Is(err, os.ErrDeadlineExceeded) {
				l.g.counts.add(countConnectTimeout)
				l.g.logger().Warn("mqtt: no CONNECT in time; closed", "remote", conn.RemoteAddr().String(), "timeout", l.g.cfg.ConnectTimeout)
			}
			l.g.classifyEnd(conn.RemoteAddr().String(), err)
		}()
	}
}

// connectingConn is a connection that holds a connecting slot until the
// broker has read its CONNECT, which it marks by setting the keepalive
// deadline (or clearing it, for a keepalive of 0), or until it ends.
type connectingConn struct {
	net.Conn
	waiting atomic.Bool
	release func()
}

func (c *connectingConn) SetDeadline(t time.Time) error {
	c.connected()
	return c.Conn.SetDeadline(t)
}

// connected gives the slot back, once, and reports whether the connection
// was still waiting for its CONNECT.
func (c *connectingConn) connected() bool {
	if c.waiting.CompareAndSwap(true, false) {
		c.release()
		return true
	}
	return false
}

func (l *listener) Close(closeClients listeners.CloseFn) {
	l.end.Store(true)
	if l.ln != nil {
		l.ln.Close()
	}
	closeClients(l.id)
	l.wg.Wait()
}

// classifyEnd counts a connection the broker ended for a packet it
// refused.
func (g *Gateway) classifyEnd(remote string, err error) {
	var code packets.Code
	if err == nil || !errors.As(err, &code) {
		return
	}
	switch code.Code {
	case packets.ErrPacketTooLarge.Code:
		g.counts.add(countOversize)
		g.logger().Warn("mqtt: oversized packet refused", "remote", remote, "err", err)
	case packets.ErrMalformedPacket.Code, packets.ErrProtocolViolation.Code:
		g.counts.add(countMalformed)
		g.logger().Warn("mqtt: malformed packet refused", "remote", remote, "err", err)
	}
}

// brokerLog is the embedded broker's log: records below level are
// dropped, and each message is logged at most once per every (by the
// records' own time), the next one carrying how many were suppressed.
// Without it a client that subscribes and never acknowledges makes the
// broker warn once for every message it drops, which Stats counts.
type brokerLog struct {
	slog.Handler
	level slog.Level
	every time.Duration
	seen  *logSeen // shared by the handlers WithAttrs and WithGroup derive
}

// logSeen is when each message was last logged and what was suppressed
// since; at most brokerLogKeys messages are tracked (mochi's are fixed
// strings), others always pass.
type logSeen struct {
	mu   sync.Mutex
	last map[string]*logMark
}

type logMark struct {
	at         time.Time
	suppressed int
}

const brokerLogKeys = 256

func newBrokerLog(h slog.Handler, level slog.Level, every time.Duration) brokerLog {
	return brokerLog{Handler: h, level: level, every: every, seen: &logSeen{last: map[string]*logMark{}}}
}

func (b brokerLog) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= b.level && b.Handler.Enabled(ctx, l)
}

func (b brokerLog) Handle(ctx context.Context, r slog.Record) error {
	b.seen.mu.Lock()
	m, ok := b.seen.last[r.Message]
	suppressed := 0
	switch {
	case ok && r.Time.Sub(m.at) < b.every:
		m.suppressed++
		b.seen.mu.Unlock()
		return nil
	case ok:
		suppressed, m.at, m.suppressed = m.suppressed, r.Time, 0
	case len(b.seen.last) < brokerLogKeys:
		b.seen.last[r.Message] = &logMark{at: r.Time}
	}
	b.seen.mu.Unlock()
	if suppressed > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", suppressed))
	}
	return b.Handler.Handle(ctx, r)
}

func (b brokerLog) WithAttrs(as []slog.Attr) slog.Handler {
	b.Handler = b.Handler.WithAttrs(as)
	return b
}

func (b brokerLog) WithGroup(name string) slog.Handler {
	b.Handler = b.Handler.WithGroup(name)
	return b
}

package mqtt

import (
	"fmt"
	"math"
	"strings"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/bitmesh/bitmesh/gossip"
)

// Config configures a gateway. At least one of Listen and Bridge is set.
type Config struct {
	// Listen is the embedded broker's HOST:PORT (MQTT 3.1.1 and 5 on
	// TCP); "" runs no broker. Clients without credentials are let in
	// only from loopback addresses.
	Listen string
	// TLSCert and TLSKey, PEM files, make Listen a TLS listener.
	TLSCert, TLSKey string
	// Bridge is an existing broker to join as a client ("tcp://host:port"
	// or "ssl://host:port"), for sites that already run one; "" for none.
	Bridge string
	// BridgeClientID, BridgeUsername and BridgePassword log into Bridge.
	// The client ID is recorded as the source of what the bridge forwards.
	BridgeClientID, BridgeUsername, BridgePassword string
	// Mappings pair MQTT topic filters with mesh topics, both ways (see
	// Mapping). Empty: every MQTT topic that is a valid mesh topic maps to
	// the mesh topic of the same name.
	Mappings []Mapping
	// Users may connect with a password; their ACLs bound what they
	// publish and subscribe to. A client with no credentials is anonymous.
	Users []User
	// Linger is how long the first message of a batch waits for others
	// (Kafka's linger.ms). Longer makes fewer, larger envelopes (one
	// signature and one verification each, at every node) at the cost of
	// latency; a QoS 1 acknowledgement waits up to Linger plus a durable
	// write.
	Linger time.Duration
	// MaxBatchEntries and MaxBatchBytes close a batch early. Bytes must
	// leave room in the envelope for its header.
	MaxBatchEntries, MaxBatchBytes int
	// MaxPending bounds the messages waiting for a batch or an
	// acknowledgement, in all; beyond it a publishing client's reads stall
	// (TCP backpressure) until the mesh catches up. Nothing is dropped.
	MaxPending int
	// MaxPayload bounds one MQTT message's payload; a bigger packet is
	// refused and its client disconnected.
	MaxPayload int
	// MaxClients bounds the broker's sessions, connected or not. A new
	// session beyond it ends the disconnected session that has waited
	// longest (counted sessions_evicted); when every session is
	// connected, the connection is refused. It also bounds the MQTT 5
	// wills waiting out a delay: a will beyond is published at once
	// (counted wills_published_early).
	MaxClients int
	// MaxQueued bounds the messages the broker holds for one subscriber:
	// QoS 1 and 2 ones sent and not yet acknowledged, and those waiting to
	// be written to its connection. A message beyond is dropped and counted
	// (dropped_subscriber_inflight, dropped_slow_subscriber). At most 65535
	// (MQTT packet IDs). A session holds at most MaxQueued × (MaxPayload +
	// about 2.5 KiB of packet and properties).
	MaxQueued int
	// MaxSubscriptions bounds the topic filters one client holds (each
	// stays in the broker's topic tree for the session's life). A
	// SUBSCRIBE that would pass it adds nothing, and the client is
	// disconnected (counted refused_subscription_limit).
	MaxSubscriptions int
	// MaxRetained bounds the topics the broker keeps a retained message
	// for (mochi keeps each for a day). A retained message on a new topic
	// beyond it is delivered but not kept (counted dropped_retained_limit);
	// a topic already kept is still updated.
	MaxRetained int
	// ConnectTimeout is how long a new connection may take to send its
	// CONNECT, TLS handshake included (mochi would wait for ever); it is
	// then closed (counted refused_connect_timeout). At most MaxClients
	// connections wait for their CONNECT at once; more are closed at once
	// (counted refused_connecting_full).
	ConnectTimeout time.Duration
	// SessionExpiry is how long the broker keeps a disconnected client's
	// persistent session (MQTT 3.1.1 clean session off, or MQTT 5 session
	// expiry, which it caps): its subscriptions and the QoS 1 messages
	// queued for it. Then the session, its subscriptions included, is
	// dropped (counted sessions_expired).
	SessionExpiry time.Duration
	// MaxMeshTopics bounds the mesh topics the gateway subscribes to on
	// behalf of MQTT subscribers (each costs GossipSub state).
	MaxMeshTopics int
	// ReceiptInterval is how often receipts are looked for once a batch
	// is logged (a receipt needs a checkpoint that covers the batch).
	ReceiptInterval time.Duration
}

// Mapping pairs an MQTT topic filter with a mesh topic. A message an MQTT
// client publishes on a topic the filter matches goes to Mesh; a mesh
// message on Mesh goes to MQTT subscribers on the MQTT topic its batch
// entry names, or for a message that is not a batch entry on MQTT itself
// (which then must hold no wildcard) or on the mesh topic's name if it
// matches MQTT.
type Mapping struct {
	MQTT string `json:"mqtt"`
	Mesh string `json:"mesh"`
}

// User is a client that authenticates with a password.
type User struct {
	Name string
	// PasswordHash is the bcrypt hash of the password (`bitmesh mqtt
	// passwd`, or htpasswd -B).
	PasswordHash string
	// Publish and Subscribe are the MQTT topic filters the user may
	// publish to and subscribe to; empty: none.
	Publish, Subscribe []string
}

// DefaultConfig: the embedded broker on 127.0.0.1:1883, identity mapping,
// 20 ms linger, batches of up to 4096 messages or 60 KiB (an envelope every
// node takes, low-memory ones included: they refuse over 64 KiB), 100,000
// messages pending, 16 KiB payloads, 10 s to send CONNECT, 10,000 sessions kept for 2 h after
// their client leaves, 1024 messages queued for a subscriber and 1000
// filters for a client, 10,000 retained topics, 256 mesh topics.
func DefaultConfig() Config {
	return Config{
		Listen: "127.0.0.1:1883", Linger: 20 * time.Millisecond,
		MaxBatchEntries: 4096, MaxBatchBytes: 60 << 10, MaxPending: 100_000,
		MaxPayload: 16 << 10, MaxClients: 10_000, SessionExpiry: 2 * time.Hour, ConnectTimeout: 10 * time.Second,
		MaxQueued: 1024, MaxSubscriptions: 1000, MaxRetained: 10_000, MaxMeshTopics: 256,
		ReceiptInterval: time.Second, BridgeClientID: "bitmesh-gateway",
	}
}

// LowMemoryConfig is DefaultConfig for boards with little RAM (the node's
// low-memory profile): 10,000 messages pending, 1000 sessions, 256
// messages queued for a subscriber, 100 filters a client, 1000 retained
// topics, 64 mesh topics.
func LowMemoryConfig() Config {
	c := DefaultConfig()
	c.MaxPending, c.MaxClients, c.MaxQueued = 10_000, 1000, 256
	c.MaxSubscriptions, c.MaxRetained, c.MaxMeshTopics = 100, 1000, 64
	return c
}

// ReceiptTopicPrefix starts the companion topic on which the gateway
// publishes each logged batch's receipt: ReceiptTopicPrefix + mesh topic.
// MQTT clients may subscribe to it; none may publish to it, and it never
// maps to the mesh.
const ReceiptTopicPrefix = "bitmesh/receipt/"

// Validate reports the first bad field.
func (c Config) Validate() error {
	if c.Listen == "" && c.Bridge == "" {
		return fmt.Errorf("%w: neither Listen nor Bridge", ErrConfig)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("%w: TLSCert and TLSKey go together", ErrConfig)
	}
	if c.Bridge != "" && !strings.HasPrefix(c.Bridge, "tcp://") && !strings.HasPrefix(c.Bridge, "ssl://") {
		return fmt.Errorf("%w: Bridge %q: want tcp://host:port or ssl://host:port", ErrConfig, c.Bridge)
	}
	if c.Linger <= 0 || c.MaxBatchEntries <= 0 || c.MaxBatchEntries > MaxBatchEntries || c.MaxPending <= 0 ||
		c.MaxPayload <= 0 || c.MaxClients <= 0 || c.MaxSubscriptions <= 0 || c.MaxRetained <= 0 || c.MaxMeshTopics <= 0 || c.ReceiptInterval <= 0 {
		return fmt.Errorf("%w: Linger, MaxBatchEntries (at most %d), MaxPending, MaxPayload, MaxClients, MaxSubscriptions, MaxRetained, MaxMeshTopics and ReceiptInterval must be positive", ErrConfig, MaxBatchEntries)
	}
	if c.MaxQueued < 1 || c.MaxQueued > math.MaxUint16 {
		return fmt.Errorf("%w: MaxQueued %d: want 1 to %d", ErrConfig, c.MaxQueued, math.MaxUint16)
	}
	if c.ConnectTimeout <= 0 {
		return fmt.Errorf("%w: ConnectTimeout must be positive", ErrConfig)
	}
	if c.SessionExpiry < time.Second || c.SessionExpiry > math.MaxUint32*time.Second {
		return fmt.Errorf("%w: SessionExpiry %v: want 1s to %d s", ErrConfig, c.SessionExpiry, uint32(math.MaxUint32))
	}
	if c.MaxBatchBytes < c.MaxPayload+batchHeader+entryFixed+MaxClientIDLen+MaxMQTTTopicLen || c.MaxBatchBytes > gossip.MaxPayloadSize {
		return fmt.Errorf("%w: MaxBatchBytes %d must hold one largest message and fit an envelope (%d)", ErrConfig, c.MaxBatchBytes, gossip.MaxPayloadSize)
	}
	for _, m := range c.Mappings {
		if !mochi.IsValidFilter(m.MQTT, false) {
			return fmt.Errorf("%w: mapping %q: not an MQTT topic filter", ErrConfig, m.MQTT)
		}
		if err := gossip.ValidTopic(m.Mesh); err != nil {
			return fmt.Errorf("%w: mapping %q=%q: %v", ErrConfig, m.MQTT, m.Mesh, err)
		}
	}
	seen := map[string]bool{}
	for _, u := range c.Users {
		if u.Name == "" || seen[u.Name] {
			return fmt.Errorf("%w: user %q: empty or repeated name", ErrConfig, u.Name)
		}
		seen[u.Name] = true
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			return fmt.Errorf("%w: user %q: password hash is not bcrypt: %v", ErrConfig, u.Name, err)
		}
		for _, f := range append(append([]string(nil), u.Publish...), u.Subscribe...) {
			if !mochi.IsValidFilter(f, false) {
				return fmt.Errorf("%w: user %q: %q is not an MQTT topic filter", ErrConfig, u.Name, f)
			}
		}
	}
	return nil
}

// ParseMapping parses "MQTTFILTER=MESHTOPIC", the --mqtt-map flag's form.
func ParseMapping(s string) (Mapping, error) {
	f, m, ok := strings.Cut(s, "=")
	if !ok {
		return Mapping{}, fmt.Errorf("%w: mapping %q: want MQTTFILTER=MESHTOPIC", ErrConfig, s)
	}
	return Mapping{MQTT: f, Mesh: m}, nil
}

// ParseUser parses "NAME:BCRYPTHASH:PUBFILTER,...:SUBFILTER,...", the
// --mqtt-user flag's form (a bcrypt hash holds no ':').
func ParseUser(s string) (User, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 4 {
		return User{}, fmt.Errorf("%w: user %q: want NAME:BCRYPTHASH:PUBFILTERS:SUBFILTERS", ErrConfig, s)
	}
	split := func(v string) []string {
		if v == "" {
			return nil
		}
		return strings.Split(v, ",")
	}
	return User{Name: parts[0], PasswordHash: parts[1], Publish: split(parts[2]), Subscribe: split(parts[3])}, nil
}

// toMesh maps an MQTT topic a client published on to its mesh topic, or
// "" when it does not go to the mesh.
func (c *Config) toMesh(mqttTopic string) string {
	if strings.HasPrefix(mqttTopic, ReceiptTopicPrefix) || strings.HasPrefix(mqttTopic, "$") {
		return ""
	}
	if len(c.Mappings) == 0 {
		if gossip.ValidTopic(mqttTopic) != nil {
			return ""
		}
		return mqttTopic
	}
	for _, m := range c.Mappings {
		if matchFilter(m.MQTT, mqttTopic) {
			return m.Mesh
		}
	}
	return ""
}

// toMQTT maps a mesh message to the MQTT topic it is delivered on: entry
// is the MQTT topic a batch entry names ("" for a message that is not an
// entry). It returns "" when the message has no MQTT topic here.
func (c *Config) toMQTT(meshTopic, entry string) string {
	if len(c.Mappings) == 0 {
		if entry != "" && entry != meshTopic {
			return "" // an entry on another name: not ours to rename
		}
		return meshTopic
	}
	for _, m := range c.Mappings {
		if m.Mesh != meshTopic {
			continue
		}
		switch {
		case entry != "" && matchFilter(m.MQTT, entry) && !strings.HasPrefix(entry, ReceiptTopicPrefix):
			return entry
		case entry == "" && !strings.ContainsAny(m.MQTT, "+#"):
			return m.MQTT
		case entry == "" && matchFilter(m.MQTT, meshTopic):
			return meshTopic
		}
	}
	return ""
}

// meshTopicsFor is the mesh topics a subscription to filter needs: the
// mapped ones whose MQTT side can match it, or with the identity mapping
// the filter itself when it is a valid mesh topic without wildcards.
func (c *Config) meshTopicsFor(filter string) []string {
	if strings.HasPrefix(filter, ReceiptTopicPrefix) {
		return nil
	}
	if len(c.Mappings) == 0 {
		if strings.ContainsAny(filter, "+#") || gossip.ValidTopic(filter) != nil {
			return nil
		}
		return []string{filter}
	}
	var out []string
	for _, m := range c.Mappings {
		if filtersOverlap(filter, m.MQTT) {
			out = append(out, m.Mesh)
		}
	}
	return out
}

// matchFilter reports whether MQTT topic name t matches filter f.
func matchFilter(f, t string) bool {
	fs, ts := strings.Split(f, "/"), strings.Split(t, "/")
	for i, p := range fs {
		switch {
		case p == "#":
			return !(i == 0 && strings.HasPrefix(t, "$"))
		case i >= len(ts):
			return false
		case p == "+":
			if i == 0 && strings.HasPrefix(t, "$") {
				return false
			}
		case p != ts[i]:
			return false
		}
	}
	return len(fs) == len(ts)
}

// filtersOverlap reports whether some topic matches both filters.
func filtersOverlap(a, b string) bool {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(as) && i < len(bs); i++ {
		if as[i] == "#" || bs[i] == "#" {
			return true
		}
		if as[i] != "+" && bs[i] != "+" && as[i] != bs[i] {
			return false
		}
	}
	return len(as) == len(bs) || (len(as) == len(bs)+1 && as[len(as)-1] == "#") || (len(bs) == len(as)+1 && bs[len(bs)-1] == "#")
}

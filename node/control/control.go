// Package control is a running node's local control API: an HTTP server on
// loopback that the bitmesh CLI (or any local program) uses to publish and
// subscribe, authenticated by a bearer token that only the node's user can
// read.
//
// The node writes its API address and token to DATA/api.json (mode 0600), so
// a client needs only the data directory:
//
//	c, err := control.Dial(dataDir)
//	if err != nil {
//		return err
//	}
//	id, err := c.Publish(ctx, "sensors/temp", []byte("21.5"), 1)
//
// Endpoints (all need "Authorization: Bearer <token>"):
//
//	GET  /v1/info                  node identity and addresses
//	POST /v1/publish               {"topic","data"|"data_b64","min_peers","peer_wait_ms"} → {"id"}
//	                               429 + Retry-After at the device's rate, 503 without peers
//	GET  /v1/subscribe?topic=T     NDJSON stream of Message, one per line
//	GET  /v1/peers                 connected peers and scored or banned subjects
//	GET  /v1/stats                 drops by reason, validation counters (Stats)
//	POST /v1/ban                   {"subject","duration","reason"}: ban a peer or device
//	POST /v1/unban                 {"subject"}: lift a ban
//	POST /v1/announce              {"record_b64"}: gossip a certificate or revocation
//
// Extensions add theirs under a prefix of their own (ext.Routes), such as
// the logs' /v1/logs (anchor/meshlog), behind the same token.
package control

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
	"unicode/utf8"

	"github.com/bitmesh/bitmesh/internal/atomicfile"
	"github.com/bitmesh/bitmesh/node"
)

// EndpointFileName is the file in the data directory that holds the API
// address and token.
const EndpointFileName = "api.json"

// Endpoint is where a node's control API listens and the token it demands.
type Endpoint struct {
	Addr  string `json:"addr"`
	Token string `json:"token"`
}

// NewToken returns a random 256-bit token.
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("control: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// WriteEndpoint writes e to DATA/api.json with mode 0600, replacing any file
// left by an earlier run.
func WriteEndpoint(dataDir string, e Endpoint) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("control: %w", err)
	}
	if err := atomicfile.Replace(filepath.Join(dataDir, EndpointFileName), b, 0o600); err != nil {
		return fmt.Errorf("control: %w", err)
	}
	return nil
}

// ReadEndpoint reads DATA/api.json. A missing file means no node is running
// on that data directory.
func ReadEndpoint(dataDir string) (Endpoint, error) {
	var e Endpoint
	path := filepath.Join(dataDir, EndpointFileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return e, fmt.Errorf("control: no running node found: %s does not exist (start one with: bitmesh node --data %s)", path, dataDir)
	}
	if err != nil {
		return e, fmt.Errorf("control: %w", err)
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Addr == "" || e.Token == "" {
		return e, fmt.Errorf("control: %s is corrupt", path)
	}
	return e, nil
}

// Info describes a running node.
type Info struct {
	DeviceID string   `json:"device_id"`
	PeerID   string   `json:"peer_id"`
	Network  string   `json:"network"`
	Addrs    []string `json:"addrs"`
	Peers    int      `json:"peers"`
}

// PublishRequest is the body of POST /v1/publish. Exactly one of Data (UTF-8
// text) and DataB64 (standard base64) is used; DataB64 wins if both are set.
//
// The answer is 200 once the envelope is handed to GossipSub; 429 with
// Retry-After (seconds) when the device is at the per-device rate its
// peers enforce; 503 when fewer than MinPeers peers are on the topic
// after PeerWaitMs (default and maximum: MaxPeerWait); 400 for what the
// node refuses outright.
type PublishRequest struct {
	Topic      string `json:"topic"`
	Data       string `json:"data,omitempty"`
	DataB64    string `json:"data_b64,omitempty"`
	MinPeers   int    `json:"min_peers,omitempty"`
	PeerWaitMs *int   `json:"peer_wait_ms,omitempty"`
}

// Stats is the reply to GET /v1/stats: what the node did with what it
// received, for `bitmesh stats`.
type Stats struct {
	Peers  int      `json:"peers"`  // connected peers
	Topics []string `json:"topics"` // joined mesh topics
	// Drops counts envelopes not delivered or not sent, by reason
	// (node.DropReason names); reasons with none are left out.
	Drops          map[string]uint64 `json:"drops"`
	Validator      ValidatorStats    `json:"validator"`
	StreamsRefused map[string]uint64 `json:"streams_refused"` // by protocol: over the limits of ext.StreamLimits
}

// ValidatorStats is gossip.Stats.
type ValidatorStats struct {
	Validated       uint64 `json:"validated"`
	SignatureChecks uint64 `json:"signature_checks"`
	CacheHits       uint64 `json:"cache_hits"`
}

// PublishResponse is the reply to POST /v1/publish.
type PublishResponse struct {
	ID string `json:"id"`
}

// Message is one verified message as the API and `bitmesh sub` print it.
// Payloads that are valid UTF-8 come as Data, others as DataB64.
type Message struct {
	ID      string    `json:"id"`
	From    string    `json:"from"`
	Topic   string    `json:"topic"`
	Data    *string   `json:"data,omitempty"`
	DataB64 string    `json:"data_b64,omitempty"`
	Time    time.Time `json:"ts"`
}

// NewMessage converts a node message to its API form.
func NewMessage(m node.Message) Message {
	out := Message{ID: m.ID.String(), From: m.From.String(), Topic: m.Topic, Time: m.Time.UTC()}
	if utf8.Valid(m.Payload) {
		s := string(m.Payload)
		out.Data = &s
	} else {
		out.DataB64 = base64.StdEncoding.EncodeToString(m.Payload)
	}
	return out
}

// Payload returns the message's payload bytes.
func (m Message) Payload() ([]byte, error) {
	if m.Data != nil {
		return []byte(*m.Data), nil
	}
	return base64.StdEncoding.DecodeString(m.DataB64)
}

// PeerInfo is one line of GET /v1/peers: a connected peer, or a peer or
// device the misbehaviour ledger scores or bans.
type PeerInfo struct {
	Subject   string     `json:"subject"`             // "peer:<id>" or "device:<bmdev1…>"
	DeviceID  string     `json:"device_id,omitempty"` // for bitmesh peers, the device of their key
	Connected bool       `json:"connected"`
	Score     uint32     `json:"score"`
	BanUntil  *time.Time `json:"ban_until,omitempty"`
	BanReason string     `json:"ban_reason,omitempty"`
}

// BanRequest is the body of POST /v1/ban and /v1/unban. Subject is a
// device ID (bmdev1…), a peer ID, or either prefixed "device:" / "peer:".
// Duration is a Go duration ("24h"); empty means the node's default.
type BanRequest struct {
	Subject  string `json:"subject"`
	Duration string `json:"duration,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

type errorResponse struct {
	Error string `json:"error"`
}

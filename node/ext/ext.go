// Package ext is the contract between a bitmesh node and its extensions:
// features such as Merkle-anchored logs, payments or an MQTT bridge that
// plug into node.Node (node.WithExtension) without the node growing a
// branch per feature.
//
// An extension gets a Host when the node starts. Through it, it registers
// libp2p stream protocols, publishes signed envelopes, watches topics
// (checking envelopes beyond the node's own pipeline and seeing every
// accepted one), scores misbehaving peers and devices, and starts goroutines
// that the node's Close waits for.
//
// The package imports no bitmesh package above gossip and antispam, so
// that extensions in lower layers (anchor) can implement it without
// importing node.
package ext

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Extension is a feature that runs inside a node.
type Extension interface {
	// Name identifies the extension in logs and errors.
	Name() string
	// Start is called once, after the node's GossipSub is up and before it
	// dials its bootstrap peers. The extension registers its stream
	// handlers and topic hooks here. An error fails node.Start.
	Start(h Host) error
	// Close is called once, before the node stops its host. It must stop
	// what Start began; goroutines started with Host.Go are waited for by
	// the node afterwards.
	Close() error
}

// Host is what a node offers its extensions. Its methods are safe for
// concurrent access.
type Host interface {
	// Libp2p is the node's host, for stream protocols.
	Libp2p() host.Host
	// Key is the node's device key.
	Key() *identity.PrivateKey
	// NetworkName is the mesh's name (node.Config.Network).
	NetworkName() string
	// Now is the node's clock (virtual in a simulation).
	Now() time.Time
	// Logger is the node's logger.
	Logger() *slog.Logger
	// DataDir is the node's data directory; empty means keep nothing on
	// disk.
	DataDir() string
	// Publish signs payload into an envelope on topic and gossips it.
	Publish(ctx context.Context, topic string, payload []byte) (gossip.ID, error)
	// Seal signs payload into an envelope on topic, as Publish would,
	// without sending it: a caller that journals the envelope before it
	// publishes can send the very same one again after a crash, which every
	// node then drops as already seen.
	Seal(ctx context.Context, topic string, payload []byte) ([]byte, gossip.ID, error)
	// PublishSealed gossips raw, a signed envelope on topic: one Seal made,
	// or one another device signed (forwarded unchanged). It runs the
	// node's own receive path first, so a logged topic's log holds raw
	// durably when it returns.
	PublishSealed(ctx context.Context, topic string, raw []byte) (gossip.ID, error)
	// Subscribe delivers topic's accepted envelopes to deliver, in order,
	// from one goroutine the node tracks, until cancel is called or the
	// node closes. buffer envelopes wait for a slow deliver; beyond that
	// GossipSub drops new ones for this subscriber (the mesh still
	// forwards them). Unlike Watch, any number may subscribe to a topic.
	Subscribe(topic string, buffer int, deliver func(Delivery)) (cancel func(), err error)
	// Penalise records misbehaviour against a peer or device in the node's
	// ledger; enough of it bans the subject.
	Penalise(s antispam.Subject, m antispam.Misbehaviour)
	// Go runs f in a goroutine that the node's Close waits for; ctx ends
	// when the node closes. It does nothing once the node is closing.
	Go(f func(ctx context.Context))
	// Watch joins topic and calls hook for its envelopes. One hook per
	// topic; a second Watch of the same topic fails.
	Watch(topic string, hook TopicHook) error
	// Admit runs an envelope that reached the extension by another way
	// than live gossip (history sync, an import) through the node's whole
	// receive path, as if it had arrived on topic from peer from: the same
	// checks, scoring and observer, then the topic's hook (so a logged
	// topic's Check appends it). committedAt is when this node accepted
	// the signed checkpoint that commits to the envelope; freshness is
	// judged against it (PROTOCOL.md §18.6). It returns the decoded
	// envelope, or the reason it was refused: a fault is scored against
	// from, as the live path scores a forwarder.
	Admit(from peer.ID, topic string, raw []byte, committedAt time.Time) (*gossip.Envelope, error)
	// Standing tells whether a device may take part in the mesh now.
	Standing(d identity.DeviceID) Standing
	// HandleStream registers handler for protocol id with the node's
	// bounds: at most lim.PerPeer streams of one peer and lim.Total in all
	// run at once (a stream beyond them is reset and counted), and each
	// stream has lim.Timeout to finish. Every stream protocol of an
	// extension goes through it; Close need not remove it.
	HandleStream(id protocol.ID, lim StreamLimits, handler network.StreamHandler) error
}

// Delivery is an accepted envelope handed to a Subscribe callback.
type Delivery struct {
	ID       gossip.ID
	Envelope *gossip.Envelope // decoded and verified; must not be modified
	From     peer.ID          // the forwarding peer
	Local    bool             // published by this node
}

// Streams is implemented by an extension that serves stream protocols: it
// declares them with their limits before the node's host exists, so that
// the node gives each its own libp2p resource-manager scope (the bounds
// HandleStream then applies in the handler too).
type Streams interface {
	Streams() map[protocol.ID]StreamLimits
}

// Standing is what a node thinks of a device.
type Standing int

const (
	// Refused: banned, or not certified in a permissioned mesh.
	Refused Standing = iota
	// Open: not banned, in an open mesh, where anyone may take part.
	Open
	// Certified: holds a valid certificate in a permissioned mesh.
	Certified
)

// StreamLimits bound the streams of one protocol that a node serves.
type StreamLimits struct {
	// PerPeer is how many streams of one peer run at once.
	PerPeer int
	// Total is how many streams of all peers run at once. Total × the
	// handler's largest answer bounds the protocol's memory.
	Total int
	// Timeout bounds one stream, request and answer.
	Timeout time.Duration
}

// Validate reports a limit that is not positive.
func (l StreamLimits) Validate() error {
	if l.PerPeer <= 0 || l.Total < l.PerPeer || l.Timeout <= 0 {
		return fmt.Errorf("ext: stream limits %+v: PerPeer and Timeout must be positive, Total at least PerPeer", l)
	}
	return nil
}

// TopicHook lets an extension take part in validating a topic and see
// every envelope accepted on it. Both functions are called from GossipSub's
// validation goroutines, concurrently, and must not block for long: the
// mesh waits on them.
type TopicHook struct {
	// Check, if set, runs after the node's own pipeline has accepted the
	// envelope (signature, freshness, work, bans, rate); raw is its
	// canonical encoding. Return nil to accept; an error wrapping ErrIgnore
	// to drop it without blame; any other error to reject it, which
	// penalises the forwarding peer. Wrap the error in a *RejectError to
	// name the misbehaviour (Malformed by default). The node's own
	// publishes are checked too, and a local Publish fails when Check
	// refuses: work that must be done before a publish is acknowledged
	// (a durable log append, say) belongs here, not in Accepted.
	Check func(from peer.ID, env *gossip.Envelope, raw []byte) error
	// CheckRecovered, if set, replaces Check for the envelopes that came
	// through Host.Admit (history recovered from another node's log, from
	// the peer that served it): a backlog arrives all at once, so limits
	// meant for live traffic may need another form there.
	CheckRecovered func(from peer.ID, env *gossip.Envelope, raw []byte) error
	// Accepted, if set, is called once for each envelope the node accepts
	// on the topic, its own publishes included, before subscribers see it.
	// raw is the envelope's canonical encoding; neither may be modified.
	Accepted func(from peer.ID, env *gossip.Envelope, raw []byte)
}

// ErrIgnore, wrapped in an error from TopicHook.Check, drops an envelope
// without penalising the peer that forwarded it: it may not know better
// (it has not seen a ban or revocation yet, say).
var ErrIgnore = errors.New("ext: ignore")

// RejectError names the misbehaviour a rejected envelope is scored as.
type RejectError struct {
	Misbehaviour antispam.Misbehaviour
	Err          error
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("%v: %v", e.Misbehaviour, e.Err)
}

func (e *RejectError) Unwrap() error { return e.Err }

// Reject returns a *RejectError for m wrapping err.
func Reject(m antispam.Misbehaviour, err error) error {
	return &RejectError{Misbehaviour: m, Err: err}
}

// CheckVerdict maps a TopicHook.Check error to a verdict and, for a
// rejection, the misbehaviour to score.
func CheckVerdict(err error) (gossip.Verdict, antispam.Misbehaviour) {
	var re *RejectError
	switch {
	case err == nil:
		return gossip.Accept, 0
	case errors.Is(err, ErrIgnore):
		return gossip.Ignore, 0
	case errors.As(err, &re):
		return gossip.Reject, re.Misbehaviour
	default:
		return gossip.Reject, antispam.Malformed
	}
}

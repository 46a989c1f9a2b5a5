package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/multiformats/go-multiaddr"
)

// DefaultPort is the TCP and UDP (QUIC) port a node listens on by default.
const DefaultPort = 4737

// DefaultNetwork is the network name of the public mesh.
const DefaultNetwork = "bitmesh"

// Config configures a Node. Start from DefaultConfig, LowMemoryConfig or
// LocalConfig and change what you need; Validate reports the first bad field.
type Config struct {
	// DataDir holds the identity key (identity.key) and, for the CLI, the
	// control API's address and token. Empty means nothing is written to
	// disk: Key must then be set, or a fresh key is made for this run only.
	DataDir string
	// Key, when set, is used instead of the key file in DataDir.
	Key *identity.PrivateKey
	// KeyPassphrase decrypts (and, on first run, encrypts) the key file.
	KeyPassphrase []byte

	// Network names the mesh. Nodes of different networks never accept each
	// other's envelopes and never share GossipSub topics.
	Network string
	// ListenAddrs are multiaddrs to listen on (TCP and QUIC). Port 0 picks a
	// free port.
	ListenAddrs []string
	// BootstrapPeers are full multiaddrs (ending in /p2p/<peer id>) dialled at
	// start and whenever the node has fewer than MinPeers connections.
	BootstrapPeers []string
	// MinPeers is the connection count below which the node redials its
	// bootstrap peers every BootstrapInterval.
	MinPeers int
	// BootstrapInterval is how often the node checks MinPeers. Shorter heals
	// faster after an outage, at the cost of more dial attempts.
	BootstrapInterval time.Duration
	// DialTimeout bounds one dial of a bootstrap or discovered peer.
	DialTimeout time.Duration
	// MDNS announces and discovers nodes of the same network on the LAN.
	// It reveals the node's presence to everyone on the link.
	MDNS bool
	// NATPortMap asks the gateway (UPnP / NAT-PMP) to map the listen ports.
	NATPortMap bool
	// ConnLow and ConnHigh are the connection manager's watermarks: above
	// High it trims back to Low. Fewer connections save memory on small
	// boards; more make the mesh harder to eclipse.
	ConnLow, ConnHigh int

	// MaxEnvelopeSize bounds accepted envelopes (at most gossip.MaxEnvelopeSize).
	MaxEnvelopeSize int
	// MaxMessageAge is how old an envelope may be when it arrives. Longer
	// tolerates slow paths; the seen cache must cover it, costing memory.
	MaxMessageAge time.Duration
	// MaxClockSkew is how far in the future an envelope's time may be.
	MaxClockSkew time.Duration
	// MaxHistoryAge is how much older than the checkpoint committing to it
	// an envelope recovered from another node's log may be (PROTOCOL.md
	// §18.6); at least MaxMessageAge. Longer recovers longer outages of
	// quiet topics; shorter narrows what a log operator can backdate.
	MaxHistoryAge time.Duration
	// SeenCacheSize bounds the remembered envelope IDs.
	SeenCacheSize int
	// ValidateQueueSize is how many received envelopes wait for
	// validation; beyond it GossipSub drops new arrivals (counted as
	// validate-queue-full). A burst from a whole site arrives at once and
	// one validation takes a quarter of a millisecond, so the queue must
	// hold a burst's worth. Each entry holds its envelope, but a flood
	// cannot fill it with large ones: the per-peer rate is checked first
	// thing when an entry is taken, before any decoding, and oversize or
	// malformed bytes are refused in microseconds.
	ValidateQueueSize int
	// OutboundQueueSize is how many RPCs wait to be written to one peer;
	// beyond it GossipSub drops them for that peer (counted as
	// outbound-queue-full). Publish waits while a topic peer's queue is
	// more than half full.
	OutboundQueueSize int
	// TopicIdleTimeout is how long the node stays in a topic that has no
	// subscription and no publish before leaving it. Every joined topic
	// holds GossipSub state (some kilobytes), so a shorter timeout frees
	// topics used once sooner; a publisher that comes back less often than
	// this joins the topic again each time, a few round trips through
	// GossipSub's event loop. Topics watched by extensions are never left.
	TopicIdleTimeout time.Duration
	// ResourceMemory is the memory, in bytes, to which libp2p's resource
	// manager scales its system-wide limits (connections, streams,
	// memory reserved by transports and muxers); 0 scales them to an
	// eighth of the machine's RAM, as libp2p does by default. At or
	// below 128 MiB libp2p uses its base limits: 128 connections, 2,048
	// streams, 128 MiB reserved, 256 file descriptors. A smaller scale
	// bounds what a flood of connections and streams can make the node
	// reserve; a scale too small for ConnHigh refuses honest peers too.
	ResourceMemory int64

	// Work sets the proof of work each topic requires. Its base targets are
	// a mesh-wide rule: configure every node alike. Zero value: no work.
	Work antispam.DifficultyConfig
	// Rate limits envelopes per sending device and per forwarding peer;
	// excess is dropped and scored.
	Rate antispam.RateConfig
	// Ledger scores misbehaviour and bans peers and devices (btcd's model).
	// Bans persist in DataDir/bans.db (in memory without a DataDir). The
	// node disconnects banned peers, then calls Ledger.OnBan if set (a
	// simulator unlinks the peers there; it must not block).
	Ledger antispam.LedgerConfig
	// Operators, if not empty, makes the mesh permissioned: the node keeps
	// connections to, and delivers envelopes from, only devices holding a
	// valid, unrevoked certificate signed by one of these operator keys
	// (device IDs). Revocations are gossiped and take effect on arrival.
	// Open mode (empty) is the default.
	Operators []string
	// Certificate is this device's encoded certificate for a permissioned
	// mesh. Nil: DataDir/device.cert is loaded if it exists.
	Certificate []byte
	// AdmissionTimeout is how long a new peer of a permissioned mesh has to
	// present a valid certificate before it is disconnected.
	AdmissionTimeout time.Duration
	// ScoreColocationWhitelist lists networks (CIDR) exempt from GossipSub's
	// penalty for many peers behind one IP: loopback in local setups, where
	// every peer shares 127.0.0.1.
	ScoreColocationWhitelist []string

	// Logger receives the node's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Clock supplies the time for validation and envelopes. Nil means
	// time.Now; a simulation passes its virtual clock.
	Clock func() time.Time
}

// DefaultConfig is for a device on a real network: listen on all interfaces
// on DefaultPort (TCP and QUIC, IPv4 and IPv6), discover LAN peers with mDNS,
// map ports on the NAT gateway, keep the key in ~/.bitmesh.
func DefaultConfig() Config {
	return Config{
		DataDir: defaultDataDir(),
		Network: DefaultNetwork,
		ListenAddrs: []string{
			fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", DefaultPort),
			fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", DefaultPort),
			fmt.Sprintf("/ip6/::/tcp/%d", DefaultPort),
			fmt.Sprintf("/ip6/::/udp/%d/quic-v1", DefaultPort),
		},
		MinPeers:          4,
		BootstrapInterval: 30 * time.Second,
		DialTimeout:       10 * time.Second,
		MDNS:              true,
		NATPortMap:        true,
		ConnLow:           32,
		ConnHigh:          96,
		MaxEnvelopeSize:   gossip.MaxEnvelopeSize,
		MaxMessageAge:     2 * time.Minute,
		MaxClockSkew:      30 * time.Second,
		MaxHistoryAge:     7 * 24 * time.Hour,
		SeenCacheSize:     1 << 16,
		ValidateQueueSize: 8192,
		OutboundQueueSize: 4096,
		TopicIdleTimeout:  2 * time.Minute,
		AdmissionTimeout:  10 * time.Second,
		Rate:              antispam.DefaultRateConfig(),
		Ledger:            antispam.DefaultLedgerConfig(),
	}
}

// LowMemoryConfig is DefaultConfig for boards with little RAM: fewer
// connections, 64 KiB envelopes, a smaller seen cache and queues, idle
// topics left after 30 s, and libp2p's resource manager at its base
// limits whatever the board's RAM.
func LowMemoryConfig() Config {
	c := DefaultConfig()
	c.ConnLow, c.ConnHigh = 8, 24
	c.MaxEnvelopeSize = 64 << 10
	c.SeenCacheSize = 1 << 13
	c.ValidateQueueSize, c.OutboundQueueSize = 2048, 1024
	c.TopicIdleTimeout = 30 * time.Second
	c.ResourceMemory = 64 << 20
	return c
}

// LocalConfig is for tests and local experiments: loopback only, ephemeral
// ports, no mDNS, no NAT mapping, nothing written to disk unless DataDir is
// set.
func LocalConfig() Config {
	c := DefaultConfig()
	c.DataDir = ""
	c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	c.MDNS = false
	c.NATPortMap = false
	c.BootstrapInterval = 2 * time.Second
	c.DialTimeout = 5 * time.Second
	c.ScoreColocationWhitelist = []string{"127.0.0.0/8", "::1/128"}
	return c
}

func defaultDataDir() string {
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".bitmesh")
	}
	return ".bitmesh"
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if c.Network == "" {
		return errors.New("node: Network must not be empty")
	}
	for _, a := range c.ListenAddrs {
		if _, err := multiaddr.NewMultiaddr(a); err != nil {
			return fmt.Errorf("node: listen address %q: %w", a, err)
		}
	}
	if _, err := parseBootstrap(c.BootstrapPeers); err != nil {
		return err
	}
	switch {
	case c.MinPeers < 0:
		return errors.New("node: MinPeers must not be negative")
	case c.BootstrapInterval <= 0 || c.DialTimeout <= 0 || c.AdmissionTimeout <= 0:
		return errors.New("node: BootstrapInterval, DialTimeout and AdmissionTimeout must be positive")
	case c.TopicIdleTimeout <= 0:
		return errors.New("node: TopicIdleTimeout must be positive")
	case c.ResourceMemory < 0:
		return errors.New("node: ResourceMemory must not be negative")
	case c.ValidateQueueSize < 1 || c.OutboundQueueSize < 1:
		return errors.New("node: ValidateQueueSize and OutboundQueueSize must be positive")
	case c.ConnLow < 1 || c.ConnHigh < c.ConnLow:
		return fmt.Errorf("node: connection watermarks %d..%d: want 1 <= ConnLow <= ConnHigh", c.ConnLow, c.ConnHigh)
	}
	if _, err := parseCIDRs(c.ScoreColocationWhitelist); err != nil {
		return err
	}
	for _, v := range []interface{ Validate() error }{c.Work, c.Rate, c.Ledger} {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("node: %w", err)
		}
	}
	return c.validatorConfig().Validate()
}

func parseCIDRs(cidrs []string) ([]*net.IPNet, error) {
	out := make([]*net.IPNet, 0, len(cidrs))
	for _, c := range cidrs {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			return nil, fmt.Errorf("node: colocation whitelist: %w", err)
		}
		out = append(out, n)
	}
	return out, nil
}

func (c Config) validatorConfig() gossip.ValidatorConfig {
	v := gossip.DefaultValidatorConfig(gossip.NetworkFromName(c.Network))
	v.MaxEnvelopeSize = c.MaxEnvelopeSize
	v.MaxAge = c.MaxMessageAge
	v.MaxFutureSkew = c.MaxClockSkew
	v.MaxHistoryAge = c.MaxHistoryAge
	v.SeenCacheSize = c.SeenCacheSize
	return v
}

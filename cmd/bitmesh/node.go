package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bitmesh/bitmesh/anchor/meshlog"
	"github.com/bitmesh/bitmesh/anchor/ots"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/internal/sdnotify"
	"github.com/bitmesh/bitmesh/inventory"
	"github.com/bitmesh/bitmesh/lightning"
	"github.com/bitmesh/bitmesh/mqtt"
	"github.com/bitmesh/bitmesh/node"
	"github.com/bitmesh/bitmesh/node/control"
	"github.com/bitmesh/bitmesh/node/metrics"
)

// readyEvent is the one line `bitmesh node` prints on stdout once it serves.
type readyEvent struct {
	Event    string   `json:"event"`
	DeviceID string   `json:"device_id"`
	PeerID   string   `json:"peer_id"`
	Addrs    []string `json:"addrs"`
	API      string   `json:"api"`
	Metrics  string   `json:"metrics,omitempty"` // the metrics listener, with --metrics
	MQTT     string   `json:"mqtt,omitempty"`    // the embedded MQTT broker, with --mqtt
}

// isLoopbackAddr reports whether addr (HOST:PORT) names a loopback host: a
// loopback IP or "localhost". An empty host means every interface.
func isLoopbackAddr(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, err
	}
	if strings.EqualFold(host, "localhost") {
		return true, nil
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback(), nil
}

// nodeOptions are `bitmesh node`'s settings beyond node.Config: the
// control API, logging, and the Merkle logs with their anchoring.
type nodeOptions struct {
	api         string // control API listen address
	apiLoopback bool
	metrics     string // metrics listen address; "" for none
	metricsLoop bool
	logLevel    slog.Level
	logFormat   string         // "text" or "json"
	logs        meshlog.Config // without anchorers: serveNode makes them
	objects     inventory.Config
	calendars   []string // OpenTimestamps calendar URLs
	btcRPC      string
	btcNet      string
	data        dataFlags
	gcPercent   int                 // for debug.SetGCPercent; 0 leaves the runtime's (GOGC)
	lnd         lightning.LndConfig // Host empty: no payments
	pay         lightning.Config    // without Backend and Services: serveNode makes them
	sellAnchor  uint64              // price per checkpoint of the anchor service; 0: not sold
	sellCertify uint64              // price per message of the certify service; 0: not sold
	mqtt        *mqtt.Config        // nil: no gateway
}

// lowMemoryGCPercent is the garbage collector's target under --profile
// low-memory: the heap may grow by half its live size between collections
// instead of doubling. Measured (BenchmarkNodeFootprint): 2 MiB less RSS
// at 50 envelopes a second with 20 peers, for twice as many collections
// of an 8 MiB heap. GOGC in the environment overrides it.
const lowMemoryGCPercent = 50

// nodeConfig turns `bitmesh node`'s arguments into a node configuration
// and the options serveNode needs. It only parses and checks flag values
// (those of --config's file too, which is the one file it reads: not even
// --passphrase-file) and opens nothing. A bad value is a usage error.
// nodeFlags are `bitmesh node`'s flags, registered on fs. The repeatable
// ones collect into the stringLists.
type nodeFlags struct {
	fs                                                   *flag.FlagSet
	o                                                    nodeOptions // its data flags are registered
	listen, bootstrap, operators, logTopics, calendars   stringList
	objectTypes, objectPublishers                        stringList
	objectsServeRate                                     *int
	lndREST, lndCert, lndMacaroon, salesTopic            *string
	payMaxMsat, sellAnchorMsat, sellCertifyMsat          *uint64
	api, metricsAddr, network, level, format             *string
	btcRPC, btcNet, config, profile                      *string
	allowRemote, metricsRemote, noMDNS, noNAT            *bool
	noWitness                                            *bool
	mqttListen, mqttBridge, mqttBridgeID, mqttBridgeUser *string
	mqttBridgePass, mqttTLSCert, mqttTLSKey              *string
	mqttMaps, mqttUsers                                  stringList
	mqttLinger, mqttSessionExpiry, mqttConnectTimeout    *time.Duration
	mqttMaxPayload, mqttMaxQueued, mqttMaxClients        *int
	mqttMaxSubscriptions, mqttMaxRetained                *int
	ckEvery                                              *uint64
	ckInterval, anchorEvery                              *time.Duration
	logDefaults                                          meshlog.Config
}

// newNodeFlags registers `bitmesh node`'s flags. `bitmesh config default`
// lists the same flags as a configuration file.
func newNodeFlags(stderr io.Writer) *nodeFlags {
	f := &nodeFlags{}
	f.fs = newFlagSet("node", "node [--data DIR] [--listen MA]... [--bootstrap MA]... [--api HOST:PORT [--api-allow-remote]] [--metrics HOST:PORT [--metrics-allow-remote]] [--network NAME] [flags]", stderr)
	fs := f.fs
	f.o.data.register(fs)
	fs.Var(&f.listen, "listen", "`multiaddr` to listen on (repeatable; default all interfaces, TCP and QUIC, port 4737)")
	fs.Var(&f.bootstrap, "bootstrap", "full `multiaddr` of a peer to join through, ending in /p2p/<peer id> (repeatable)")
	f.api = fs.String("api", "127.0.0.1:0", "control API listen address: a loopback host (127.0.0.1, [::1], localhost) unless --api-allow-remote")
	f.allowRemote = fs.Bool("api-allow-remote", false, "let --api listen on a non-loopback address: the bearer token in DATA/"+control.EndpointFileName+", sent in clear over HTTP, is then its only protection")
	f.metricsAddr = fs.String("metrics", "", "serve Prometheus /metrics, /healthz and /readyz, without a token, on this `HOST:PORT` (off when empty): a loopback host unless --metrics-allow-remote")
	f.metricsRemote = fs.Bool("metrics-allow-remote", false, "let --metrics listen on a non-loopback address: anyone who reaches it reads the node's peer count, traffic and refusals")
	f.network = fs.String("network", node.DefaultNetwork, "network name: nodes of other networks are never accepted")
	f.noMDNS = fs.Bool("no-mdns", false, "do not discover peers on the LAN with mDNS")
	fs.Var(&f.operators, "operator", "trusted operator device `ID` (repeatable): makes the mesh permissioned; the device's certificate is read from DATA/"+node.CertificateFileName)
	f.noNAT = fs.Bool("no-nat", false, "do not ask the gateway (UPnP / NAT-PMP) to map the listen ports")
	f.level = fs.String("log-level", "info", "log level: debug, info, warn, error")
	f.format = fs.String("log-format", "text", "log format: text (logfmt) or json, one object per line")
	fs.Var(&f.logTopics, "log-topic", "keep a Merkle log of this `topic`'s messages, with signed checkpoints (repeatable)")
	f.logDefaults = meshlog.DefaultConfig()
	logDefaults := f.logDefaults
	f.noWitness = fs.Bool("no-witness", false, "do not cosign other nodes' log checkpoints (they are still checked)")
	f.ckEvery = fs.Uint64("checkpoint-every", logDefaults.CheckpointEvery, "sign a log checkpoint after this many new entries")
	f.ckInterval = fs.Duration("checkpoint-interval", logDefaults.CheckpointInterval, "sign a checkpoint of every grown log this often")
	fs.Var(&f.calendars, "anchor-calendar", "OpenTimestamps calendar `URL`: anchor log checkpoints there (repeatable)")
	f.btcRPC = fs.String("anchor-bitcoin-rpc", "", "Bitcoin node JSON-RPC URL (http://user:pass@host:port) to anchor checkpoints in OP_RETURN outputs, paid from the device key's P2PKH address (btcd with --txindex --addrindex)")
	f.btcNet = fs.String("anchor-bitcoin-net", "mainnet", "Bitcoin network of --anchor-bitcoin-rpc: mainnet, testnet3, signet, regtest or simnet")
	f.anchorEvery = fs.Duration("anchor-interval", logDefaults.AnchorInterval, "anchor the newest checkpoint of each log this often")
	mq, mqLow := mqtt.DefaultConfig(), mqtt.LowMemoryConfig()
	f.mqttListen = fs.String("mqtt", "", "run the MQTT gateway's embedded broker (MQTT 3.1.1 and 5) on this `HOST:PORT` (off when empty); clients without a password are let in from loopback only")
	f.mqttBridge = fs.String("mqtt-bridge", "", "bridge the mesh to an existing MQTT broker at this `URL` (tcp://host:port or ssl://host:port) as a client")
	f.mqttBridgeID = fs.String("mqtt-bridge-client-id", mq.BridgeClientID, "MQTT client ID of the --mqtt-bridge connection (its session persists across restarts)")
	f.mqttBridgeUser = fs.String("mqtt-bridge-user", "", "user name for --mqtt-bridge")
	f.mqttBridgePass = fs.String("mqtt-bridge-password", "", "password for --mqtt-bridge (prefer the --config file: arguments are visible to other local users)")
	fs.Var(&f.mqttMaps, "mqtt-map", "map MQTT topics to a mesh topic and back, as `FILTER=TOPIC` (repeatable; none: every MQTT topic that is a valid mesh topic maps to itself); mapped topics are logged")
	fs.Var(&f.mqttUsers, "mqtt-user", "MQTT user, as `NAME:BCRYPTHASH:PUBFILTERS:SUBFILTERS` with comma-separated topic filters (repeatable; see `bitmesh mqtt passwd`)")
	f.mqttTLSCert = fs.String("mqtt-tls-cert", "", "PEM certificate `FILE`: --mqtt listens with TLS (with --mqtt-tls-key)")
	f.mqttTLSKey = fs.String("mqtt-tls-key", "", "PEM private key `FILE` of --mqtt-tls-cert")
	f.mqttLinger = fs.Duration("mqtt-linger", mq.Linger, "how long an MQTT message waits for others to share its signed envelope (more: fewer signatures, more latency)")
	f.mqttMaxPayload = fs.Int("mqtt-max-payload", mq.MaxPayload, "largest MQTT message payload in bytes; bigger packets are refused")
	f.mqttMaxClients = fs.Int("mqtt-max-clients", mq.MaxClients, fmt.Sprintf("MQTT sessions the broker keeps, connected or not; beyond, the session disconnected longest is ended (--profile low-memory: %d)", mqLow.MaxClients))
	f.mqttMaxSubscriptions = fs.Int("mqtt-max-subscriptions", mq.MaxSubscriptions, fmt.Sprintf("topic filters one MQTT client may hold; a client that subscribes past it is disconnected (--profile low-memory: %d)", mqLow.MaxSubscriptions))
	f.mqttMaxRetained = fs.Int("mqtt-max-retained", mq.MaxRetained, fmt.Sprintf("topics the MQTT broker keeps a retained message for; a retained message on a new topic beyond is delivered but not kept (--profile low-memory: %d)", mqLow.MaxRetained))
	f.mqttMaxQueued = fs.Int("mqtt-max-queued", mq.MaxQueued, fmt.Sprintf("messages the MQTT broker holds for one subscriber (sent and unacknowledged, or waiting to be written); more are dropped and counted (--profile low-memory: %d)", mqLow.MaxQueued))
	f.mqttConnectTimeout = fs.Duration("mqtt-connect-timeout", mq.ConnectTimeout, "how long a new MQTT connection may take to send its CONNECT (TLS handshake included) before it is closed")
	f.mqttSessionExpiry = fs.Duration("mqtt-session-expiry", mq.SessionExpiry, "how long the broker keeps a disconnected client's persistent session and the QoS 1 messages queued for it")
	fs.Var(&f.objectTypes, "object-type", "fetch objects of this `type` (firmware, config) as soon as a peer announces one (repeatable)")
	fs.Var(&f.objectPublishers, "object-publisher", "fetch objects automatically only if this device `ID` signed them (repeatable; default any publisher)")
	f.objectsServeRate = fs.Int("objects-serve-rate", 0, "serve objects to peers at most this many `bytes` a second in all (0: no bound)")
	f.lndREST = fs.String("lnd-rest", "", "lnd REST API `HOST:PORT` (lnd's --restlisten): enables payments, `bitmesh pay` (off when empty)")
	f.lndCert = fs.String("lnd-tls-cert", "", "lnd's tls.cert `FILE`, trusted as the only root for --lnd-rest")
	f.lndMacaroon = fs.String("lnd-macaroon", "", "lnd macaroon `FILE` with invoice and payment rights (admin.macaroon)")
	f.payMaxMsat = fs.Uint64("pay-max-msat", 1_000_000, "the most this node pays for one bundle of a peer's service, in msat")
	f.sellAnchorMsat = fs.Uint64("sell-anchor-msat", 0, "sell the \"anchor\" service at this price in msat per checkpoint: other nodes pay to have a checkpoint anchored through this node's --anchor-calendar and --anchor-bitcoin-rpc (0: not sold)")
	f.sellCertifyMsat = fs.Uint64("sell-certify-msat", 0, "sell the \"certify\" service at this price in msat per message: a device pays to have its own signed envelope logged in one of this node's --log-topic logs and gets the receipt back (0: not sold)")
	f.salesTopic = fs.String("sales-topic", "", "publish each sale on this topic (log it with --log-topic so every sale gets a receipt)")
	f.profile = fs.String("profile", "default", "settings to start from: default, or low-memory for boards with little RAM (8..24 connections, 64 KiB envelopes, smaller caches and queues, libp2p resource limits at their base, GOGC=50, MQTT broker bounds of mqtt.LowMemoryConfig; easier to eclipse)")
	f.config = fs.String("config", "", "read flag values from this YAML `FILE` (see `bitmesh config default`); flags on the command line win")
	return f
}

func nodeConfig(args []string, stderr io.Writer) (node.Config, nodeOptions, error) {
	f := newNodeFlags(stderr)
	fs, o := f.fs, f.o
	api, allowRemote, metricsAddr, metricsRemote := f.api, f.allowRemote, f.metricsAddr, f.metricsRemote
	network, noMDNS, noNAT, level, format := f.network, f.noMDNS, f.noNAT, f.level, f.format
	noWitness, ckEvery, ckInterval := f.noWitness, f.ckEvery, f.ckInterval
	btcRPC, btcNet, anchorEvery, logDefaults := f.btcRPC, f.btcNet, f.anchorEvery, f.logDefaults
	if _, err := parse(fs, args, 0, 0); err != nil {
		return node.Config{}, o, err
	}
	if *f.config != "" {
		if err := applyConfigFile(fs, *f.config); err != nil {
			return node.Config{}, o, usagef(fs, "%v", err)
		}
	}
	o.data = f.o.data
	listen, bootstrap, operators, logTopics, calendars := f.listen, f.bootstrap, f.operators, f.logTopics, f.calendars
	loopback, err := isLoopbackAddr(*api)
	if err != nil {
		return node.Config{}, o, usagef(fs, "--api %q: %v", *api, err)
	}
	if !loopback && !*allowRemote {
		return node.Config{}, o, usagef(fs, "--api %s is not a loopback address: the control API publishes, bans and signs as this device, "+
			"and anyone who can reach it would face only the bearer token, sent in clear over HTTP. "+
			"Listen on 127.0.0.1, [::1] or localhost, or pass --api-allow-remote to accept that", *api)
	}
	if *metricsAddr != "" {
		loopback, err := isLoopbackAddr(*metricsAddr)
		if err != nil {
			return node.Config{}, o, usagef(fs, "--metrics %q: %v", *metricsAddr, err)
		}
		if !loopback && !*metricsRemote {
			return node.Config{}, o, usagef(fs, "--metrics %s is not a loopback address: its endpoints need no token, "+
				"so anyone who can reach it reads the node's peers, traffic and refusals. "+
				"Listen on 127.0.0.1, [::1] or localhost, or pass --metrics-allow-remote to accept that", *metricsAddr)
		}
		o.metrics, o.metricsLoop = *metricsAddr, loopback
	}
	if err := o.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return node.Config{}, o, usagef(fs, "--log-level %q: want debug, info, warn or error", *level)
	}
	if *format != "text" && *format != "json" {
		return node.Config{}, o, usagef(fs, "--log-format %q: want text or json", *format)
	}
	o.logFormat = *format
	for _, a := range listen {
		if _, err := multiaddr.NewMultiaddr(a); err != nil {
			return node.Config{}, o, usagef(fs, "--listen %q: %v", a, err)
		}
	}
	for _, a := range bootstrap {
		if _, err := peer.AddrInfoFromString(a); err != nil {
			return node.Config{}, o, usagef(fs, "--bootstrap %q: want a multiaddr ending in /p2p/<peer id>: %v", a, err)
		}
	}
	for _, op := range operators {
		if _, err := identity.ParseDeviceID(op); err != nil {
			return node.Config{}, o, usagef(fs, "--operator %q: %v", op, err)
		}
	}
	if *ckEvery == 0 || *ckInterval <= 0 {
		return node.Config{}, o, usagef(fs, "--checkpoint-every and --checkpoint-interval must be positive")
	}
	if (len(calendars) > 0 || *btcRPC != "") && *anchorEvery <= 0 {
		return node.Config{}, o, usagef(fs, "--anchor-interval must be positive")
	}

	var cfg node.Config
	switch *f.profile {
	case "default":
		cfg = node.DefaultConfig()
	case "low-memory":
		cfg = node.LowMemoryConfig()
		if os.Getenv("GOGC") == "" {
			o.gcPercent = lowMemoryGCPercent
		}
	default:
		return node.Config{}, o, usagef(fs, "--profile %q: want default or low-memory", *f.profile)
	}
	cfg.DataDir = o.data.dir
	cfg.Network = *network
	cfg.BootstrapPeers = bootstrap
	cfg.MDNS = !*noMDNS
	cfg.NATPortMap = !*noNAT
	cfg.Operators = operators
	if len(listen) > 0 {
		cfg.ListenAddrs = listen
	}
	o.api, o.apiLoopback = *api, loopback
	o.logs = logDefaults
	o.logs.Topics, o.logs.Witness, o.logs.CheckpointEvery, o.logs.CheckpointInterval = logTopics, !*noWitness, *ckEvery, *ckInterval
	o.logs.AnchorInterval = *anchorEvery
	o.calendars, o.btcRPC, o.btcNet = calendars, *btcRPC, *btcNet
	if o.objects, err = objectsConfig(f.objectTypes, f.objectPublishers, *f.objectsServeRate); err != nil {
		return node.Config{}, o, usagef(fs, "%v", err)
	}
	if *f.lndREST != "" && (*f.lndCert == "" || *f.lndMacaroon == "") {
		return node.Config{}, o, usagef(fs, "--lnd-rest needs --lnd-tls-cert and --lnd-macaroon")
	}
	if *f.sellAnchorMsat > 0 && (*f.lndREST == "" || (len(calendars) == 0 && *btcRPC == "")) {
		return node.Config{}, o, usagef(fs, "--sell-anchor-msat needs --lnd-rest and an anchor (--anchor-calendar or --anchor-bitcoin-rpc)")
	}
	o.lnd = lightning.LndConfig{Host: *f.lndREST, TLSCertPath: *f.lndCert, MacaroonPath: *f.lndMacaroon}
	o.pay = lightning.DefaultConfig()
	o.pay.MaxPriceMsat, o.pay.SalesTopic = *f.payMaxMsat, *f.salesTopic
	o.sellAnchor = *f.sellAnchorMsat
	if *f.sellCertifyMsat > 0 && (*f.lndREST == "" || len(logTopics) == 0) {
		return node.Config{}, o, usagef(fs, "--sell-certify-msat needs --lnd-rest and at least one --log-topic")
	}
	o.sellCertify = *f.sellCertifyMsat
	set := map[string]bool{} // given on the command line or in --config
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if o.mqtt, err = mqttConfig(f, set); err != nil {
		return node.Config{}, o, usagef(fs, "%v", err)
	}
	if o.mqtt != nil {
		o.logs.Topics = appendNew(o.logs.Topics, o.mqtt.Mappings)
	}
	return cfg, o, nil
}

// mqttConfig is the gateway's configuration from the --mqtt flags, or nil
// when neither --mqtt nor --mqtt-bridge is given. The broker's bounds
// start from the profile's (mqtt.LowMemoryConfig under --profile
// low-memory); a bound given as a flag (set) wins.
func mqttConfig(f *nodeFlags, set map[string]bool) (*mqtt.Config, error) {
	if *f.mqttListen == "" && *f.mqttBridge == "" {
		return nil, nil
	}
	c := mqtt.DefaultConfig()
	if *f.profile == "low-memory" {
		c = mqtt.LowMemoryConfig()
	}
	c.Listen, c.Bridge, c.BridgeClientID = *f.mqttListen, *f.mqttBridge, *f.mqttBridgeID
	c.BridgeUsername, c.BridgePassword = *f.mqttBridgeUser, *f.mqttBridgePass
	c.TLSCert, c.TLSKey, c.Linger, c.MaxPayload = *f.mqttTLSCert, *f.mqttTLSKey, *f.mqttLinger, *f.mqttMaxPayload
	c.SessionExpiry, c.ConnectTimeout = *f.mqttSessionExpiry, *f.mqttConnectTimeout
	for name, bound := range map[string]struct{ dst, flag *int }{
		"mqtt-max-clients": {&c.MaxClients, f.mqttMaxClients}, "mqtt-max-queued": {&c.MaxQueued, f.mqttMaxQueued},
		"mqtt-max-subscriptions": {&c.MaxSubscriptions, f.mqttMaxSubscriptions}, "mqtt-max-retained": {&c.MaxRetained, f.mqttMaxRetained},
	} {
		if set[name] {
			*bound.dst = *bound.flag
		}
	}
	for _, m := range f.mqttMaps {
		mp, err := mqtt.ParseMapping(m)
		if err != nil {
			return nil, fmt.Errorf("--mqtt-map: %w", err)
		}
		c.Mappings = append(c.Mappings, mp)
	}
	for _, u := range f.mqttUsers {
		us, err := mqtt.ParseUser(u)
		if err != nil {
			return nil, fmt.Errorf("--mqtt-user: %w", err)
		}
		c.Users = append(c.Users, us)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// appendNew adds the mapped mesh topics to the logged ones, once each: the
// gateway certifies what it maps.
func appendNew(topics []string, maps []mqtt.Mapping) []string {
	seen := map[string]bool{}
	for _, t := range topics {
		seen[t] = true
	}
	for _, m := range maps {
		if !seen[m.Mesh] {
			seen[m.Mesh] = true
			topics = append(topics, m.Mesh)
		}
	}
	return topics
}

func runNode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, o, err := nodeConfig(args, stderr)
	if err != nil {
		return err
	}
	return serveNode(ctx, cfg, o, stdout, stderr)
}

// logHandler writes the node's log to w in format ("text" or "json").
// Under systemd (journald sets JOURNAL_STREAM for a service whose output
// it collects) the lines carry no time of their own: the journal stamps
// every line, and two timestamps per line only mislead.
func logHandler(w io.Writer, format string, level slog.Level, journal bool) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if journal {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	if format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// serveNode runs the node nodeConfig described and its control API until
// ctx ends.
func serveNode(ctx context.Context, cfg node.Config, o nodeOptions, stdout, stderr io.Writer) error {
	log := slog.New(logHandler(stderr, o.logFormat, o.logLevel, os.Getenv("JOURNAL_STREAM") != ""))
	cfg.Logger = log
	if o.gcPercent > 0 {
		debug.SetGCPercent(o.gcPercent)
	}
	if !o.apiLoopback {
		log.Warn("control API listens beyond loopback: the bearer token is its only protection, and HTTP sends it in clear",
			"api", o.api, "token_file", filepath.Join(cfg.DataDir, control.EndpointFileName))
	}
	pass, err := o.data.passphrase()
	if err != nil {
		return fmt.Errorf("passphrase: %w", err)
	}
	cfg.KeyPassphrase = pass
	lc := o.logs
	if len(o.calendars) > 0 {
		otsAnchorer, err := ots.NewAnchorer(ots.Config{Calendars: o.calendars})
		if err != nil {
			return err
		}
		lc.Anchorers = append(lc.Anchorers, otsAnchorer)
	}
	if o.btcRPC != "" {
		key, _, err := identity.LoadOrCreate(identity.KeyPath(cfg.DataDir), pass)
		if err != nil {
			return err
		}
		cfg.Key = key
		btc, err := newBitcoinAnchorer(o.btcRPC, o.btcNet, key)
		if err != nil {
			return err
		}
		log.Info("anchoring in Bitcoin", "funding_address", btc.Address())
		lc.Anchorers = append(lc.Anchorers, btc)
	}
	logs, err := meshlog.New(lc)
	if err != nil {
		return err
	}
	objects, err := inventory.New(o.objects)
	if err != nil {
		return err
	}
	nopts := []node.Option{node.WithExtension(logs), node.WithExtension(objects)}
	if o.lnd.Host != "" {
		pay, err := newPayments(o, lc.Anchorers, logs)
		if err != nil {
			return err
		}
		nopts = append(nopts, node.WithExtension(pay))
	}
	var gw *mqtt.Gateway
	if o.mqtt != nil {
		if gw, err = mqtt.New(*o.mqtt, logs); err != nil {
			return err
		}
		nopts = append(nopts, node.WithExtension(gw))
	}
	var reg *prometheus.Registry
	if o.metrics != "" {
		reg = metrics.NewRegistry()
		nopts = append(nopts, node.WithLibp2pOptions(libp2p.PrometheusRegisterer(reg)))
	}
	n, err := node.New(cfg, nopts...)
	if err != nil {
		return err
	}
	if err := n.Start(ctx); err != nil {
		return err
	}
	defer n.Close()

	var metricsAddr string
	if reg != nil {
		msrv, addr, err := serveMetrics(reg, n, logs, objects, gw, o, log)
		if err != nil {
			return err
		}
		defer msrv.Close()
		metricsAddr = addr
	}

	token, err := control.NewToken()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.api)
	if err != nil {
		return fmt.Errorf("control API: %w", err)
	}
	srv := &http.Server{Handler: control.Handler(n, token), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if err := control.WriteEndpoint(cfg.DataDir, control.Endpoint{Addr: ln.Addr().String(), Token: token}); err != nil {
		srv.Close()
		return err
	}
	defer os.Remove(filepath.Join(cfg.DataDir, control.EndpointFileName))

	ready := readyEvent{Event: "ready", DeviceID: n.DeviceID().String(), PeerID: n.PeerID().String(), API: ln.Addr().String(), Metrics: metricsAddr}
	if gw != nil {
		ready.MQTT = gw.Addr()
	}
	for _, a := range n.Addrs() {
		ready.Addrs = append(ready.Addrs, a.String())
	}
	if err := json.NewEncoder(stdout).Encode(ready); err != nil {
		srv.Close()
		return err
	}
	// Under systemd (Type=notify): ready now, and alive while it runs.
	if err := sdnotify.Notify(sdnotify.Ready); err != nil {
		log.Warn("telling systemd the node is ready", "err", err)
	}
	watchdogCtx, stopWatchdog := context.WithCancel(ctx)
	defer stopWatchdog()
	go sdnotify.KeepAlive(watchdogCtx, n.Running)

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		return fmt.Errorf("control API: %w", err)
	}
	_ = sdnotify.Notify(sdnotify.Stopping)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Streaming subscriptions never finish on their own: Close cuts them.
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("control API shutdown", "err", err)
	}
	srv.Close()
	return nil
}

// serveMetrics serves the node's metrics and health endpoints on their own
// listener, o.metrics, and returns the server, to close, and its address.
// Nothing there needs the control API's token, and nothing there acts.
func serveMetrics(reg *prometheus.Registry, n *node.Node, logs *meshlog.MeshLog, objects *inventory.Inventory, gw *mqtt.Gateway,
	o nodeOptions, log *slog.Logger) (*http.Server, string, error) {
	if !o.metricsLoop {
		log.Warn("metrics listen beyond loopback: anyone who reaches them reads the node's peers, traffic and refusals", "metrics", o.metrics)
	}
	mopts := []metrics.Option{metrics.WithLogs(metricsLogs(logs)), metrics.WithObjects(metricsObjects(objects))}
	if gw != nil {
		mopts = append(mopts, metrics.WithMQTT(gw.Stats))
	}
	h, err := metrics.New(reg, n, mopts...)
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", o.metrics)
	if err != nil {
		return nil, "", fmt.Errorf("metrics: %w", err)
	}
	srv := metrics.NewServer(h)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener failed", "err", err)
		}
	}()
	return srv, ln.Addr().String(), nil
}

// metricsObjects reports the object store's state to package metrics.
func metricsObjects(x *inventory.Inventory) func() metrics.Objects {
	return func() metrics.Objects {
		c := x.Counters()
		o := metrics.Objects{Refused: c.Refusals(), FetchedChunks: c.FetchedChunks, ServedChunks: c.ServedChunks, ServedBytes: c.ServedBytes}
		for _, info := range x.Objects() {
			if info.Complete {
				o.Complete++
			} else {
				o.Incomplete++
			}
		}
		return o
	}
}

// metricsLogs reports the Merkle logs' state to package metrics.
func metricsLogs(m *meshlog.MeshLog) func() []metrics.Log {
	return func() []metrics.Log {
		infos := m.Logs()
		out := make([]metrics.Log, 0, len(infos))
		for _, l := range infos {
			out = append(out, metrics.Log{Topic: l.Topic, Entries: l.Size, Bytes: l.Bytes, Checkpoint: l.Checkpoint,
				Anchored: l.Anchored, PendingAnchors: len(l.Pending), Refused: l.Refused,
				CheckpointTime: l.CheckpointTime, AnchoredBy: l.AnchoredBy})
		}
		return out
	}
}

package sim

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/node"
)

// Scenario describes one simulated run. Zero fields take the defaults
// documented on each; ParseScenario fills them and Validate checks them.
type Scenario struct {
	Name string `yaml:"name"`
	// Seed makes topology, link latencies and schedules reproducible.
	Seed uint64 `yaml:"seed"`
	// Nodes is the number of honest nodes.
	Nodes    int      `yaml:"nodes"`
	Topology Topology `yaml:"topology"`
	Link     Link     `yaml:"link"`
	Traffic  Traffic  `yaml:"traffic"`
	// Warmup is virtual time for the mesh to form before traffic starts.
	Warmup Duration `yaml:"warmup"`
	// Drain is virtual time after the last publish for messages to arrive.
	Drain       Duration        `yaml:"drain"`
	Adversaries []AdversarySpec `yaml:"adversaries"`
	// Partitions cut the honest nodes into two sides for a while.
	Partitions []Partition `yaml:"partitions"`
	// Churn takes random honest non-publishing nodes offline and back.
	Churn *Churn `yaml:"churn"`
	// Node overrides settings of every honest node.
	Node NodeSettings `yaml:"node"`
	// Payments, if set, has the honest nodes sell and buy a paid service.
	Payments *Payments `yaml:"payments"`
	// Rollout, if set, moves one large object through the swarm with the
	// inventory extension (rollout.go).
	Rollout *Rollout `yaml:"rollout"`
}

// NodeSettings are the node.Config fields a scenario may set; zero keeps
// the node's default.
type NodeSettings struct {
	// MaxMessageAge and MaxClockSkew bound an envelope's timestamp (the
	// freshness window); the seen caches cover the window plus 30 s of
	// grace.
	MaxMessageAge Duration `yaml:"max_message_age"`
	MaxClockSkew  Duration `yaml:"max_clock_skew"`
	// ConnLow and ConnHigh, when ConnHigh is set, give every honest node
	// a libp2p connection manager with these watermarks (and its default
	// one-minute grace for new connections): above ConnHigh it trims back
	// to ConnLow. Unset, simulated nodes keep every connection.
	ConnLow  int `yaml:"conn_low"`
	ConnHigh int `yaml:"conn_high"`
}

// apply sets the settings on a node configuration.
func (s NodeSettings) apply(cfg *node.Config) {
	if s.MaxMessageAge.Duration > 0 {
		cfg.MaxMessageAge = s.MaxMessageAge.Duration
	}
	if s.MaxClockSkew.Duration > 0 {
		cfg.MaxClockSkew = s.MaxClockSkew.Duration
	}
	if s.ConnHigh > 0 {
		cfg.ConnLow, cfg.ConnHigh = s.ConnLow, s.ConnHigh
	}
}

// seenLifetime is the longest an honest node's GossipSub seen cache can
// remember a message: its TTL, the freshness window plus grace, plus the
// minute between the cache's sweeps.
func (s NodeSettings) seenLifetime() time.Duration {
	cfg := node.LocalConfig()
	s.apply(&cfg)
	return cfg.MaxMessageAge + cfg.MaxClockSkew + gossip.DefaultValidatorConfig(gossip.NetworkFromName(cfg.Network)).Grace + time.Minute
}

// Partition disconnects nodes [0, Fraction·nodes) from the rest at At
// (after warmup) and reconnects their links at Heal.
type Partition struct {
	At       Duration `yaml:"at"`
	Heal     Duration `yaml:"heal"`
	Fraction float64  `yaml:"fraction"`
}

// Churn: every Interval, Fraction of the non-publishing honest nodes lose
// all their links for Downtime, then get them back.
type Churn struct {
	Interval Duration `yaml:"interval"`
	Fraction float64  `yaml:"fraction"`
	Downtime Duration `yaml:"downtime"`
}

// Topology says which nodes are linked. Only linked nodes can connect, so
// GossipSub's peer exchange cannot flatten it.
type Topology struct {
	// Kind: "random" (each node links to Degree random others, plus a ring
	// so the graph is connected), "regions" (the same, with nodes spread
	// round-robin over regions and each link's latency taken from
	// RegionLatencyMS instead of link.latency_ms), or "explicit" (Edges).
	Kind   string `yaml:"kind"`
	Degree int    `yaml:"degree"`
	// RegionLatencyMS[i][j] is the one-way latency between regions i and
	// j (symmetric, square); link.jitter_pct applies on top.
	RegionLatencyMS [][]float64 `yaml:"region_latency_ms"`
	// Edges lists [a, b, latency_ms] triples for kind explicit.
	Edges [][3]float64 `yaml:"edges"`
}

// Link sets every link's one-way latency: LatencyMS ± JitterPct percent,
// drawn once per link (per-packet jitter would reorder a TCP-like stream,
// which the in-memory network does not model), its capacity and its
// packet loss.
type Link struct {
	LatencyMS float64 `yaml:"latency_ms"`
	JitterPct float64 `yaml:"jitter_pct"`
	// BandwidthMbps caps each link, both directions together; 0 is
	// unlimited. A write waits until the link has carried what was
	// queued before it.
	BandwidthMbps float64 `yaml:"bandwidth_mbps"`
	// LossPct is the chance that a 1448-byte segment is lost. Streams are
	// reliable, so each loss delays its write, and what follows it, by one
	// retransmission timeout (RTT + 200 ms, as Linux TCP).
	LossPct float64 `yaml:"loss_pct"`
}

// Traffic is the honest publishing schedule.
type Traffic struct {
	Topic string `yaml:"topic"`
	// Publishers are the first Publishers honest nodes.
	Publishers int `yaml:"publishers"`
	// Messages each publisher sends, one per Interval, starting at a
	// random offset within the first Interval.
	Messages int      `yaml:"messages"`
	Interval Duration `yaml:"interval"`
	// Size of each payload in bytes.
	Size int `yaml:"size"`
	// WorkBits is the proof of work the topic requires (leading zero bits
	// of the envelope ID); honest publishers mint it.
	WorkBits uint8 `yaml:"work_bits"`
}

// AdversarySpec configures one group of attackers; Type selects the
// Adversary implementation (see Adversaries).
type AdversarySpec struct {
	Type  string `yaml:"type"`
	Count int    `yaml:"count"`
	// Targets is how many random honest nodes each attacker links to.
	Targets int `yaml:"targets"`
	// Rate is messages per second per attacker.
	Rate float64 `yaml:"rate"`
	// Start is when the attack begins, after warmup.
	Start Duration `yaml:"start"`
	// Strike, for sybils that first behave (covert-flash, eclipse), is
	// when after Start they all turn at once.
	Strike Duration `yaml:"strike"`
	// Target is the honest node (by index) an eclipse or censorship
	// attack aims at; the report then gives its own delivery figures.
	Target int `yaml:"target"`
	// WorkBits, for spam-pow, is the proof of work each spam envelope
	// carries (default: the topic's target, so the spam is valid).
	WorkBits uint8 `yaml:"work_bits"`
	// Delay, for replay, is how long after receiving an envelope an
	// attacker sends it again. The default is 15 s past the longest the
	// honest nodes' seen caches remember a message (4m15s with default
	// node settings: a 3 min TTL swept once a minute), and so also past
	// the freshness window; shorter replays are dropped as duplicates,
	// unscored.
	Delay Duration `yaml:"delay"`
	// Restart, for eclipse-exhaust, is when after Start the Target node
	// restarts (from its data directory, dialling its anchors and
	// bootstrap peers first); 0: never.
	Restart Duration `yaml:"restart"`
}

// coldBoot reports whether the attackers are there from the first
// instant: linked before the honest nodes link to one another, and
// attacking from time 0 instead of after warmup, before honest nodes have
// any history to score them by.
func (a AdversarySpec) coldBoot() bool { return a.Type == "cold-boot" || a.Type == "eclipse-exhaust" }

// begins is when, from the start of the run, the attack begins.
func (a AdversarySpec) begins(warmup time.Duration) time.Duration {
	if a.coldBoot() {
		return a.Start.Duration
	}
	return warmup + a.Start.Duration
}

// Duration is a time.Duration written as "2m", "250ms" in YAML.
type Duration struct{ time.Duration }

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MaxScenarioSize bounds a scenario file.
const MaxScenarioSize = 1 << 20

// ParseScenario decodes a YAML scenario strictly (unknown fields are
// errors naming their line), fills defaults and validates it.
func ParseScenario(b []byte) (Scenario, error) {
	if len(b) > MaxScenarioSize {
		return Scenario{}, fmt.Errorf("%w: %d bytes exceeds %d", ErrScenario, len(b), MaxScenarioSize)
	}
	var sc Scenario
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&sc); err != nil {
		return Scenario{}, fmt.Errorf("%w: %v", ErrScenario, err)
	}
	sc.fillDefaults()
	if err := sc.Validate(); err != nil {
		return Scenario{}, err
	}
	return sc, nil
}

func (sc *Scenario) fillDefaults() {
	if sc.Topology.Kind == "" {
		sc.Topology.Kind = "random"
	}
	if sc.Topology.Degree == 0 {
		sc.Topology.Degree = 8
	}
	if sc.Traffic.Topic == "" {
		sc.Traffic.Topic = "sim"
	}
	if sc.Traffic.Interval.Duration == 0 {
		sc.Traffic.Interval.Duration = time.Second
	}
	if sc.Traffic.Size == 0 {
		sc.Traffic.Size = 256
	}
	if sc.Warmup.Duration == 0 {
		sc.Warmup.Duration = 5 * time.Second
	}
	if sc.Drain.Duration == 0 {
		sc.Drain.Duration = 5 * time.Second
	}
	for i := range sc.Adversaries {
		a := &sc.Adversaries[i]
		if a.Targets == 0 {
			a.Targets = 4
		}
		if a.Rate == 0 {
			a.Rate = 20
		}
		if a.WorkBits == 0 && a.Type == "spam-pow" {
			a.WorkBits = sc.Traffic.WorkBits
		}
		if a.Delay.Duration == 0 && a.Type == "replay" {
			a.Delay.Duration = sc.Node.seenLifetime() + 15*time.Second
		}
	}
}

// Validate reports the first field outside its range.
func (sc Scenario) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrScenario, fmt.Sprintf(format, a...))
	}
	switch {
	case sc.Nodes < 2 || sc.Nodes > 20000:
		return bad("nodes: %d outside 2..20000", sc.Nodes)
	case sc.Topology.Kind != "random" && sc.Topology.Kind != "regions" && sc.Topology.Kind != "explicit":
		return bad("topology.kind: %q (want random, regions or explicit)", sc.Topology.Kind)
	case sc.Topology.Kind != "explicit" && (sc.Topology.Degree < 1 || sc.Topology.Degree >= sc.Nodes):
		return bad("topology.degree: %d outside 1..nodes-1", sc.Topology.Degree)
	case sc.Link.LatencyMS < 0 || sc.Link.LatencyMS > 10000:
		return bad("link.latency_ms: %v outside 0..10000", sc.Link.LatencyMS)
	case sc.Link.JitterPct < 0 || sc.Link.JitterPct >= 100:
		return bad("link.jitter_pct: %v outside 0..<100", sc.Link.JitterPct)
	case sc.Link.BandwidthMbps < 0 || sc.Link.BandwidthMbps > 100000:
		return bad("link.bandwidth_mbps: %v outside 0..100000", sc.Link.BandwidthMbps)
	case sc.Link.LossPct < 0 || sc.Link.LossPct > 50:
		return bad("link.loss_pct: %v outside 0..50", sc.Link.LossPct)
	case sc.Traffic.Publishers < 1 || sc.Traffic.Publishers > sc.Nodes:
		return bad("traffic.publishers: %d outside 1..nodes", sc.Traffic.Publishers)
	case sc.Traffic.Messages < 1 || sc.Traffic.Messages > 100000:
		return bad("traffic.messages: %d outside 1..100000", sc.Traffic.Messages)
	case sc.Traffic.Interval.Duration <= 0:
		return bad("traffic.interval: must be positive")
	case sc.Traffic.Size < 8 || sc.Traffic.Size > 60000:
		return bad("traffic.size: %d outside 8..60000", sc.Traffic.Size)
	case sc.Traffic.WorkBits > 24:
		return bad("traffic.work_bits: %d above 24", sc.Traffic.WorkBits)
	case sc.Warmup.Duration < 0 || sc.Drain.Duration < 0:
		return bad("warmup and drain must not be negative")
	}
	if err := sc.Topology.validate(sc.Nodes); err != nil {
		return bad("%v", err)
	}
	if n := sc.Node; n.MaxMessageAge.Duration < 0 || n.MaxMessageAge.Duration > 24*time.Hour || n.MaxClockSkew.Duration < 0 || n.MaxClockSkew.Duration > time.Hour {
		return bad("node: max_message_age 0..24h, max_clock_skew 0..1h")
	}
	if n := sc.Node; (n.ConnHigh != 0 || n.ConnLow != 0) && (n.ConnLow < 1 || n.ConnHigh < n.ConnLow || n.ConnHigh > 10000) {
		return bad("node: conn_low and conn_high: 1 <= conn_low <= conn_high <= 10000, or neither")
	}
	for i, p := range sc.Partitions {
		if p.Fraction <= 0 || p.Fraction >= 1 || p.At.Duration < 0 || p.Heal.Duration <= p.At.Duration {
			return bad("partitions[%d]: fraction in (0, 1), 0 <= at < heal", i)
		}
	}
	if c := sc.Churn; c != nil && (c.Fraction <= 0 || c.Fraction > 0.5 || c.Interval.Duration <= 0 || c.Downtime.Duration <= 0 || c.Downtime.Duration >= c.Interval.Duration) {
		return bad("churn: fraction in (0, 0.5], 0 < downtime < interval")
	}
	if sc.Payments != nil {
		if err := sc.Payments.validate(sc.Nodes); err != nil {
			return bad("%v", err)
		}
	}
	for i, a := range sc.Adversaries {
		if a.Type == "freeloader" && sc.Payments == nil {
			return bad("adversaries[%d]: freeloader needs payments", i)
		}
		if _, ok := adversaryTypes[a.Type]; !ok {
			return bad("adversaries[%d].type: unknown %q (known: %v)", i, a.Type, AdversaryTypes())
		}
		if a.Count < 1 || a.Count > 10000 || a.Targets < 1 || a.Targets > sc.Nodes || a.Rate <= 0 || a.Rate > 10000 {
			return bad("adversaries[%d]: count 1..10000, targets 1..nodes, rate in (0, 10000]", i)
		}
		if a.WorkBits > 24 {
			return bad("adversaries[%d].work_bits: %d above 24", i, a.WorkBits)
		}
		if a.Target < 0 || a.Target >= sc.Nodes || a.Start.Duration < 0 || a.Strike.Duration < 0 || a.Delay.Duration < 0 || a.Restart.Duration < 0 {
			return bad("adversaries[%d]: target 0..nodes-1, start, strike, delay and restart not negative", i)
		}
		if a.Type == "eclipse-exhaust" && (sc.Node.ConnHigh == 0 || a.Count <= sc.Node.ConnHigh || a.Target < sc.Traffic.Publishers || a.Targets < 2) {
			return bad("adversaries[%d]: eclipse-exhaust needs node.conn_high, more sybils than it, a target that does not publish, and targets ≥ 2", i)
		}
		if (a.Type == "bad-chunks" || a.Type == "drip-chunks") && sc.Rollout == nil {
			return bad("adversaries[%d]: %s needs a rollout", i, a.Type)
		}
	}
	if sc.Rollout != nil {
		if err := sc.Rollout.validate(sc.Nodes); err != nil {
			return bad("%v", err)
		}
	}
	return nil
}

func (t Topology) validate(nodes int) error {
	switch t.Kind {
	case "regions":
		n := len(t.RegionLatencyMS)
		if n < 2 || n > 64 {
			return fmt.Errorf("topology.region_latency_ms: %d regions, want 2..64", n)
		}
		for i, row := range t.RegionLatencyMS {
			if len(row) != n {
				return fmt.Errorf("topology.region_latency_ms: row %d has %d entries, want %d", i, len(row), n)
			}
			for j, v := range row {
				if v < 0 || v > 10000 || v != t.RegionLatencyMS[j][i] {
					return fmt.Errorf("topology.region_latency_ms[%d][%d]: %v must be in 0..10000 and symmetric", i, j, v)
				}
			}
		}
	case "explicit":
		if len(t.Edges) == 0 {
			return errors.New("topology.edges: empty")
		}
		for i, e := range t.Edges {
			a, b := int(e[0]), int(e[1])
			if float64(a) != e[0] || float64(b) != e[1] || a < 0 || b < 0 || a >= nodes || b >= nodes || a == b || e[2] < 0 || e[2] > 10000 {
				return fmt.Errorf("topology.edges[%d]: %v is not [a, b, latency_ms] with distinct nodes in 0..nodes-1", i, e)
			}
		}
	}
	return nil
}

// ErrScenario wraps every scenario error.
var ErrScenario = errors.New("sim: bad scenario")

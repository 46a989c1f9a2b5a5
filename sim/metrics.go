package sim

import (
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bitmesh/bitmesh/antispam"
)

// Report is a run's result; its JSON form is report.json
// (docs/SIMULATION.md documents the schema).
type Report struct {
	Scenario            string          `json:"scenario"`
	Nodes               int             `json:"nodes"`
	Links               int             `json:"links"`
	Messages            int             `json:"messages"`
	HonestDeliveryRatio float64         `json:"honest_delivery_ratio"`
	LatencyMS           Percentiles     `json:"latency_ms"`
	ShortestPathMS      Percentiles     `json:"shortest_path_ms"`
	DeliveryOverTime    []DeliveryPoint `json:"delivery_over_time"`
	BytesPerNode        Spread          `json:"bytes_per_node"`
	DuplicatesPerDeliv  float64         `json:"duplicates_per_delivery"`
	Attackers           int             `json:"attackers"`
	AttackersBanned     int             `json:"attackers_banned"`
	// BanSeconds: for each banned attacker, virtual seconds from the start
	// of its attack until the last of its honest neighbours banned it.
	BanSeconds []float64 `json:"ban_seconds"`
	// AttackerScores is, per adversary type and virtual second, the
	// GossipSub score its attackers have at their honest neighbours.
	AttackerScores []ScoreSeries `json:"attacker_scores,omitempty"`
	// Redelivered counts messages an honest node's subscriber received
	// a second time: a replay that got through. It must be 0.
	Redelivered int `json:"redelivered"`
	// RedeliveredAfterRestart counts messages a restarted node received
	// again after its restart: its GossipSub seen cache starts empty, so
	// what its neighbours still gossip about is new to it. Applications
	// deduplicate by envelope ID across restarts.
	RedeliveredAfterRestart int `json:"redelivered_after_restart,omitempty"`
	// Targets reports the honest nodes that eclipse or censorship
	// attacks aimed at.
	Targets []TargetReport `json:"targets,omitempty"`
	// Payments reports paid services, in a scenario with payments.
	Payments       *PaymentsReport `json:"payments,omitempty"`
	WallSeconds    float64         `json:"wall_seconds"`
	VirtualSeconds float64         `json:"virtual_seconds"`
	// Partial is set when the run was stopped before the scenario's end
	// (Stopped says why, e.g. "interrupted"): the report covers the
	// VirtualSeconds that ran, and messages published last may not
	// have had the time to arrive.
	Partial bool   `json:"partial,omitempty"`
	Stopped string `json:"stopped,omitempty"`
	// AttackerLinks counts, per adversary type, the links between its
	// attackers and honest nodes, and how many of those nodes banned the
	// attacker: an attacker that misbehaves only when asked (bad-chunks)
	// is banned by the neighbours that asked it.
	AttackerLinks []AttackerLinks `json:"attacker_links,omitempty"`
	// Rollout reports the scenario's large-object rollout, if it has one.
	Rollout *RolloutReport `json:"rollout,omitempty"`

	samples samples // for plots; not in report.json
}

// AttackerLinks is one adversary type's links and bans.
type AttackerLinks struct {
	Type   string `json:"type"`
	Links  int    `json:"links"`
	Banned int    `json:"banned"`
}

// samples are a run's raw distributions, sorted.
type samples struct {
	latency, shortest, nodeBytes []float64
}

// TargetReport is how one attacked node fared: what it received of
// others' messages, and how far its own messages got.
type TargetReport struct {
	Node          int         `json:"node"`
	ReceivedRatio float64     `json:"received_ratio"`
	ReceivedMS    Percentiles `json:"received_latency_ms"`
	// PublishedRatio is the delivery ratio of the target's own messages
	// (zero if it does not publish).
	PublishedRatio float64 `json:"published_delivery_ratio"`
	// HonestPeersMin and HonestPeersEnd, for eclipse-exhaust, are the
	// fewest honest peers the target was connected to at any sampled
	// second after warmup (restarts included), and at the end.
	HonestPeersMin int `json:"honest_peers_min,omitempty"`
	HonestPeersEnd int `json:"honest_peers_end,omitempty"`
}

// Percentiles of a distribution, in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Spread of a per-node quantity.
type Spread struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	Max  float64 `json:"max"`
}

// ScoreSeries is how the honest nodes scored one adversary type's
// attackers over time.
type ScoreSeries struct {
	Type   string       `json:"type"`
	Points []ScorePoint `json:"points"`
}

// ScorePoint summarises the GossipSub scores of the (attacker, honest
// neighbour) pairs sampled in one virtual second of the run. A banned
// attacker drops out once its neighbours forget it.
type ScorePoint struct {
	Second int     `json:"second"`
	Mean   float64 `json:"mean"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	Pairs  int     `json:"pairs"`
}

// DeliveryPoint is the delivery ratio of the messages published in one
// virtual second.
type DeliveryPoint struct {
	Second int     `json:"second"`
	Ratio  float64 `json:"ratio"`
}

// recorder collects a run's events; safe for concurrent use.
type recorder struct {
	sc    Scenario
	graph *graph
	start time.Time

	mu           sync.Mutex
	published    map[uint64]published
	delivered    map[uint64]map[int]time.Time
	redelivered  int
	afterRestart int               // redeliveries across a restart
	restartedAt  map[int]time.Time // node → its last restart
	attackers    map[peer.ID]*attacker
	attackAt     time.Time
	scores       map[string]map[int]*ScorePoint // adversary type → second
	peers        map[int][]int                  // target → honest peers per sampled second
}

type published struct {
	from int
	at   time.Time
}

type attacker struct {
	kind       string // adversary type
	neighbours map[int]bool
	bannedBy   map[int]time.Time
}

func newRecorder(sc Scenario, start time.Time) *recorder {
	return &recorder{sc: sc, start: start, published: map[uint64]published{}, delivered: map[uint64]map[int]time.Time{},
		attackers: map[peer.ID]*attacker{}, scores: map[string]map[int]*ScorePoint{}, peers: map[int][]int{}, restartedAt: map[int]time.Time{}}
}

func (r *recorder) publish(msg uint64, from int, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.published[msg] = published{from, at}
}

// deliver records the first delivery of msg at node; payloads that are
// not honest messages (valid spam) are not counted.
func (r *recorder) deliver(node int, msg uint64, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.published[msg]; !ok {
		return
	}
	m := r.delivered[msg]
	if m == nil {
		m = map[int]time.Time{}
		r.delivered[msg] = m
	}
	if first, ok := m[node]; ok {
		if rs, ok := r.restartedAt[node]; ok && first.Before(rs) {
			r.afterRestart++
		} else {
			r.redelivered++
		}
		return
	}
	m[node] = at
}

func (r *recorder) deliveries() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.delivered {
		n += len(m)
	}
	return n
}

func (r *recorder) expected() int {
	return r.sc.Traffic.Publishers * r.sc.Traffic.Messages * (r.sc.Nodes - 1)
}

func (r *recorder) addAttacker(p peer.ID, kind string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attackers[p] = &attacker{kind: kind, neighbours: map[int]bool{}, bannedBy: map[int]time.Time{}}
}

func (r *recorder) attackerLinked(p peer.ID, node int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attackers[p].neighbours[node] = true
}

func (r *recorder) attackStarted(at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.attackAt.IsZero() || at.Before(r.attackAt) {
		r.attackAt = at
	}
}

// scored takes one honest node's GossipSub scores of its peers and keeps
// those of attackers.
func (r *recorder) scored(at time.Time, scores map[peer.ID]float64) {
	sec := int(at.Sub(r.start) / time.Second)
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, v := range scores {
		a, ok := r.attackers[p]
		if !ok {
			continue
		}
		bySec := r.scores[a.kind]
		if bySec == nil {
			bySec = map[int]*ScorePoint{}
			r.scores[a.kind] = bySec
		}
		pt := bySec[sec]
		if pt == nil {
			pt = &ScorePoint{Second: sec, Min: v, Max: v}
			bySec[sec] = pt
		}
		pt.Mean += v // a sum until report
		pt.Min, pt.Max = min(pt.Min, v), max(pt.Max, v)
		pt.Pairs++
	}
}

// ban notes that honest node banned a subject, if it is an attacker.
func (r *recorder) ban(node int, b antispam.Ban, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, err := b.Subject.PeerID()
	if err != nil {
		return
	}
	if a, ok := r.attackers[p]; ok {
		if _, dup := a.bannedBy[node]; !dup {
			a.bannedBy[node] = at
		}
	}
}

func (r *recorder) report(nodes []*honest, virtual time.Duration) Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := Report{Scenario: r.sc.Name, Nodes: r.sc.Nodes, Links: len(r.graph.edges), Messages: len(r.published),
		VirtualSeconds: virtual.Seconds(), Attackers: len(r.attackers), BanSeconds: []float64{}}
	shortest := map[int][]time.Duration{}
	var lat, sp []float64
	perSecond := map[int][2]int{}
	delivered := 0
	for msg, pub := range r.published {
		if shortest[pub.from] == nil {
			shortest[pub.from] = r.graph.shortestFrom(pub.from)
		}
		got := r.delivered[msg]
		for node := range r.sc.Nodes {
			if node == pub.from {
				continue
			}
			sp = append(sp, ms(shortest[pub.from][node]))
			if at, ok := got[node]; ok {
				lat = append(lat, ms(at.Sub(pub.at)))
				delivered++
			}
		}
	}
	start := r.earliestPublish()
	for msg, pub := range r.published {
		s := int(pub.at.Sub(start) / time.Second)
		c := perSecond[s]
		c[0] += len(r.delivered[msg])
		c[1] += r.sc.Nodes - 1
		perSecond[s] = c
	}
	for s, c := range perSecond {
		rep.DeliveryOverTime = append(rep.DeliveryOverTime, DeliveryPoint{Second: s, Ratio: float64(c[0]) / float64(c[1])})
	}
	slices.SortFunc(rep.DeliveryOverTime, func(a, b DeliveryPoint) int { return a.Second - b.Second })
	if want := len(r.published) * (r.sc.Nodes - 1); want > 0 {
		rep.HonestDeliveryRatio = float64(delivered) / float64(want)
	}
	rep.LatencyMS, rep.ShortestPathMS = percentiles(lat), percentiles(sp)
	rep.samples.latency, rep.samples.shortest = lat, sp // sorted by percentiles

	var bytes []float64
	var dups int64
	for _, h := range nodes {
		h.traffic.mu.Lock()
		bytes = append(bytes, float64(h.traffic.sent+h.traffic.recv))
		dups += h.traffic.duplicates
		h.traffic.mu.Unlock()
	}
	if delivered > 0 {
		rep.DuplicatesPerDeliv = float64(dups) / float64(delivered)
	}
	rep.BytesPerNode = spread(bytes)
	rep.samples.nodeBytes = bytes

	links := map[string]*AttackerLinks{}
	for _, a := range r.attackers {
		l := links[a.kind]
		if l == nil {
			l = &AttackerLinks{Type: a.kind}
			links[a.kind] = l
		}
		l.Links += len(a.neighbours)
		for n := range a.bannedBy {
			if a.neighbours[n] {
				l.Banned++
			}
		}
	}
	for _, l := range links {
		rep.AttackerLinks = append(rep.AttackerLinks, *l)
	}
	slices.SortFunc(rep.AttackerLinks, func(a, b AttackerLinks) int { return strings.Compare(a.Type, b.Type) })
	for _, a := range r.attackers {
		if len(a.neighbours) == 0 || len(a.bannedBy) < len(a.neighbours) {
			continue
		}
		rep.AttackersBanned++
		var last time.Time
		for _, at := range a.bannedBy {
			if at.After(last) {
				last = at
			}
		}
		rep.BanSeconds = append(rep.BanSeconds, last.Sub(r.attackAt).Seconds())
	}
	slices.Sort(rep.BanSeconds)
	rep.Redelivered, rep.RedeliveredAfterRestart = r.redelivered, r.afterRestart
	for kind, bySec := range r.scores {
		series := ScoreSeries{Type: kind}
		for _, pt := range bySec {
			p := *pt
			p.Mean /= float64(p.Pairs)
			series.Points = append(series.Points, p)
		}
		slices.SortFunc(series.Points, func(a, b ScorePoint) int { return a.Second - b.Second })
		rep.AttackerScores = append(rep.AttackerScores, series)
	}
	slices.SortFunc(rep.AttackerScores, func(a, b ScoreSeries) int { return strings.Compare(a.Type, b.Type) })
	for _, a := range r.sc.Adversaries {
		if (a.Type == "eclipse" || a.Type == "censor" || a.Type == "eclipse-exhaust") && !slices.ContainsFunc(rep.Targets, func(t TargetReport) bool { return t.Node == a.Target }) {
			rep.Targets = append(rep.Targets, r.target(a.Target))
		}
	}
	return rep
}

// target computes a TargetReport. Callers hold r.mu.
func (r *recorder) target(node int) TargetReport {
	t := TargetReport{Node: node}
	var lat []float64
	var others, ownGot, ownWant int
	for msg, pub := range r.published {
		if pub.from == node {
			ownGot += len(r.delivered[msg])
			ownWant += r.sc.Nodes - 1
			continue
		}
		others++
		if at, ok := r.delivered[msg][node]; ok {
			lat = append(lat, ms(at.Sub(pub.at)))
		}
	}
	if others > 0 {
		t.ReceivedRatio = float64(len(lat)) / float64(others)
	}
	if ownWant > 0 {
		t.PublishedRatio = float64(ownGot) / float64(ownWant)
	}
	t.ReceivedMS = percentiles(lat)
	if ps := r.peers[node]; len(ps) > 0 {
		t.HonestPeersMin, t.HonestPeersEnd = slices.Min(ps), ps[len(ps)-1]
	}
	return t
}

// restarted records that node restarted at at.
func (r *recorder) restarted(node int, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.restartedAt[node] = at
}

// honestPeers records how many honest peers node is connected to now.
func (r *recorder) honestPeers(node, count int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.peers[node] = append(r.peers[node], count)
}

func (r *recorder) earliestPublish() time.Time {
	var t time.Time
	for _, p := range r.published {
		if t.IsZero() || p.at.Before(t) {
			t = p.at
		}
	}
	return t
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentiles uses the nearest-rank method; an empty input gives zeros.
func percentiles(v []float64) Percentiles {
	if len(v) == 0 {
		return Percentiles{}
	}
	slices.Sort(v)
	at := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(v)))) - 1
		return v[max(0, min(i, len(v)-1))]
	}
	return Percentiles{P50: at(50), P95: at(95), P99: at(99), Max: v[len(v)-1]}
}

func spread(v []float64) Spread {
	if len(v) == 0 {
		return Spread{}
	}
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	p := percentiles(v)
	return Spread{Mean: sum / float64(len(v)), P50: p.P50, Max: p.Max}
}

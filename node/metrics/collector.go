package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/node"
)

// Log is one Merkle log's state, as an extension such as anchor/meshlog
// reports it (cmd/bitmesh adapts MeshLog.Logs). Topic must be local
// configuration: it becomes a label.
type Log struct {
	Topic          string
	Entries        uint64            // the log's size
	Bytes          uint64            // the entries' size
	Checkpoint     uint64            // size of the newest signed checkpoint
	Anchored       uint64            // size of the newest checkpoint with a confirmed anchor
	PendingAnchors int               // anchors awaiting confirmation
	Refused        map[string]uint64 // envelopes refused, by a fixed set of reasons
	CheckpointTime time.Time         // when the newest checkpoint was signed; zero: unknown
	AnchoredBy     map[string]uint64 // anchor kind → size of the newest checkpoint it confirmed
}

// Objects is the object store's and transfers' state, as the inventory
// extension reports it (cmd/bitmesh adapts Inventory.Objects and
// Counters).
type Objects struct {
	Complete      int               // objects held whole
	Incomplete    int               // objects being fetched, or waiting to resume
	Refused       map[string]uint64 // what the object protocol refused or dropped, by a fixed set of reasons
	FetchedChunks uint64            // chunks fetched from peers, verified and committed
	ServedChunks  uint64            // chunks sent to peers
	ServedBytes   uint64            // bytes of answers sent to peers
}

// Option configures New.
type Option func(*collector)

// WithObjects reports the object store f describes at each scrape. f
// must be safe to call from any goroutine and quick.
func WithObjects(f func() Objects) Option { return func(c *collector) { c.objects = f } }

// WithMQTT reports the MQTT gateway's counters, by name, that f returns
// (mqtt.Gateway.Stats). f must be safe to call from any goroutine and
// quick.
func WithMQTT(f func() map[string]uint64) Option { return func(c *collector) { c.mqtt = f } }

// WithLogs reports the Merkle logs f describes at each scrape. f must be
// safe to call from any goroutine and quick; it may return nil (no logs,
// or the extension is not running).
func WithLogs(f func() []Log) Option { return func(c *collector) { c.logs = f } }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("bitmesh_"+name, help, labels, nil)
}

// The node's metrics. Names follow Prometheus's conventions: a bitmesh_
// prefix, snake_case, _total on counters.
var (
	descRunning         = desc("node_running", "1 while the node is started and not closed, else 0.")
	descPeers           = desc("peers", "Peers the node is connected to.")
	descTopics          = desc("topics", "GossipSub topics the node has joined.")
	descPublished       = desc("messages_published_total", "The node's own envelopes accepted by its validator on their way into the mesh.")
	descReceived        = desc("messages_received_total", "Other devices' envelopes accepted: delivered and forwarded, or recovered from a peer's log.")
	descValidated       = desc("validator_envelopes_total", "Envelopes passed to the validation pipeline.")
	descSignatureChecks = desc("validator_signature_checks_total", "Signature verdicts the validator needed (its seen cache missed).")
	descCacheHits       = desc("validator_cache_hits_total", "Verdicts served from the validator's seen cache.")
	descDrops           = desc("drops_total", "Envelopes dropped, by reason: refused by the receive path or not queued by GossipSub.", "reason")
	descBanned          = desc("banned_subjects", "Bans in force, by subject kind (peer, device).", "kind")
	descScored          = desc("scored_subjects", "Subjects with a misbehaviour score in the ledger, by kind (peer, device).", "kind")
	descTopicPeers      = desc("topic_peers", "Peers known to be subscribed to a topic the node has joined.", "topic")
	descValidateSeconds = desc("validate_seconds", "Wall time the receive path spent on each envelope: validation, admission checks and hooks.")
	descSealSeconds     = desc("publish_seal_seconds", "Wall time Publish spent minting proof of work for and signing each of the node's own envelopes.")
	descStreamsRefused  = desc("streams_refused_total", "Streams of the node's protocols refused for too many open, by protocol.", "protocol")
	descLogEntries      = desc("log_entries", "Entries in the Merkle log of a topic.", "topic")
	descLogBytes        = desc("log_bytes", "Bytes of the entries in the Merkle log of a topic.", "topic")
	descLogCheckpoint   = desc("log_checkpoint_size", "Size of the newest signed checkpoint of a topic's log.", "topic")
	descLogAnchored     = desc("log_anchored_size", "Size of the newest checkpoint of a topic's log with a confirmed anchor (0: none).", "topic")
	descLogPending      = desc("log_anchors_pending", "Anchors of a topic's log awaiting confirmation.", "topic")
	descLogCheckpointAt = desc("log_checkpoint_timestamp_seconds", "Unix time at which the newest checkpoint of a topic's log was signed (absent until the node signs one): its age is time() minus this.", "topic")
	descLogAnchorSize   = desc("log_anchor_size", "Size of the newest checkpoint of a topic's log confirmed by an anchor of a kind (opentimestamps, bitcoin-opreturn).", "topic", "kind")
	descLogRefused      = desc("log_refused_total", "Envelopes a topic's log refused, by reason.", "topic", "reason")
	descObjects         = desc("objects", "Objects in the store, by state: complete, or incomplete (being fetched or waiting to resume).", "state")
	descObjectRefused   = desc("object_refused_total", "What the object protocol refused or dropped, by reason (bad chunks, stalls, tail stalls, announcements over budget, ...).", "reason")
	descObjectFetched   = desc("object_fetched_chunks_total", "Object chunks fetched from peers, verified and committed.")
	descObjectServed    = desc("object_served_chunks_total", "Object chunks sent to peers.")
	descObjectBytes     = desc("object_served_bytes_total", "Bytes of object answers (chunks, leaf lists, manifests) sent to peers.")
	descMQTT            = desc("mqtt_events_total", "What the MQTT gateway did, by event: messages received, batched and delivered, and each refusal or drop by reason (GET /v1/mqtt).", "event")
)

// subjectKinds are the ledger's subject kinds, each reported even at 0.
var subjectKinds = []antispam.SubjectKind{antispam.SubjectPeer, antispam.SubjectDevice}

// collector reads the node when Prometheus collects: no state of its own.
type collector struct {
	n       *node.Node
	logs    func() []Log
	objects func() Objects
	mqtt    func() map[string]uint64
}

var _ prometheus.Collector = (*collector)(nil)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRunning, descPeers, descTopics, descPublished, descReceived,
		descValidated, descSignatureChecks, descCacheHits, descDrops, descBanned, descScored, descStreamsRefused,
		descTopicPeers, descValidateSeconds, descSealSeconds} {
		ch <- d
	}
	if c.logs != nil {
		for _, d := range []*prometheus.Desc{descLogEntries, descLogBytes, descLogCheckpoint, descLogAnchored, descLogPending, descLogRefused, descLogCheckpointAt, descLogAnchorSize} {
			ch <- d
		}
	}
	if c.objects != nil {
		for _, d := range []*prometheus.Desc{descObjects, descObjectRefused, descObjectFetched, descObjectServed, descObjectBytes} {
			ch <- d
		}
	}
	if c.mqtt != nil {
		ch <- descMQTT
	}
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func histogram(d *prometheus.Desc, h node.Histogram) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		buckets[b] = h.Counts[i]
	}
	return prometheus.MustNewConstHistogram(d, h.Count, h.Sum, buckets)
}

func counter(d *prometheus.Desc, v uint64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	if !c.n.Running() {
		ch <- gauge(descRunning, 0)
		return
	}
	ch <- gauge(descRunning, 1)
	ch <- gauge(descPeers, float64(len(c.n.Peers())))
	topics := c.n.Topics()
	ch <- gauge(descTopics, float64(len(topics)))
	for _, t := range topics {
		ch <- gauge(descTopicPeers, float64(len(c.n.TopicPeers(t))), t)
	}
	ch <- histogram(descValidateSeconds, c.n.ValidateTimes())
	ch <- histogram(descSealSeconds, c.n.SealTimes())
	msgs := c.n.Messages()
	ch <- counter(descPublished, msgs.Published)
	ch <- counter(descReceived, msgs.Received)
	vs := c.n.ValidatorStats()
	ch <- counter(descValidated, vs.Validated)
	ch <- counter(descSignatureChecks, vs.SignatureChecks)
	ch <- counter(descCacheHits, vs.CacheHits)
	for reason, v := range c.n.Drops() {
		ch <- counter(descDrops, v, reason)
	}
	c.collectLedger(ch)
	for proto, v := range c.n.StreamsRefused() {
		ch <- counter(descStreamsRefused, v, string(proto))
	}
	if c.logs != nil {
		for _, l := range c.logs() {
			ch <- gauge(descLogEntries, float64(l.Entries), l.Topic)
			ch <- gauge(descLogBytes, float64(l.Bytes), l.Topic)
			ch <- gauge(descLogCheckpoint, float64(l.Checkpoint), l.Topic)
			ch <- gauge(descLogAnchored, float64(l.Anchored), l.Topic)
			ch <- gauge(descLogPending, float64(l.PendingAnchors), l.Topic)
			if !l.CheckpointTime.IsZero() {
				ch <- gauge(descLogCheckpointAt, float64(l.CheckpointTime.UnixNano())/1e9, l.Topic)
			}
			for kind, size := range l.AnchoredBy {
				ch <- gauge(descLogAnchorSize, float64(size), l.Topic, kind)
			}
			for reason, v := range l.Refused {
				ch <- counter(descLogRefused, v, l.Topic, reason)
			}
		}
	}
	if c.objects != nil {
		o := c.objects()
		ch <- gauge(descObjects, float64(o.Complete), "complete")
		ch <- gauge(descObjects, float64(o.Incomplete), "incomplete")
		for reason, v := range o.Refused {
			ch <- counter(descObjectRefused, v, reason)
		}
		ch <- counter(descObjectFetched, o.FetchedChunks)
		ch <- counter(descObjectServed, o.ServedChunks)
		ch <- counter(descObjectBytes, o.ServedBytes)
	}
	if c.mqtt != nil {
		for event, v := range c.mqtt() {
			ch <- counter(descMQTT, v, event)
		}
	}
}

// collectLedger counts bans and scored subjects by kind. The node may
// close between Running and here: the ledger's error is then reported as
// the scrape's, for those two metrics only.
func (c *collector) collectLedger(ch chan<- prometheus.Metric) {
	bans, err := c.n.Bans()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descBanned, err)
		return
	}
	scores, err := c.n.Scores()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descScored, err)
		return
	}
	banned := make(map[antispam.SubjectKind]int, len(subjectKinds))
	for _, b := range bans {
		banned[b.Subject.Kind]++
	}
	scored := make(map[antispam.SubjectKind]int, len(subjectKinds))
	for _, s := range scores {
		scored[s.Subject.Kind]++
	}
	for _, k := range subjectKinds {
		ch <- gauge(descBanned, float64(banned[k]), k.String())
		ch <- gauge(descScored, float64(scored[k]), k.String())
	}
}

package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/node"
)

// startNode starts a loopback node, closed at the end of the test.
func startNode(t *testing.T, ctx context.Context, cfg node.Config, opts ...node.Option) *node.Node {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	n, err := node.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape fetches /metrics and parses it.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return fams
}

// value is the sample of family name whose labels include want (name=value
// pairs), a histogram's sample count, or -1 if there is none.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// anyValue marks a value a test does not check.
const anyValue = -2

// TestScrapeTwoNodes runs the endpoints against a real node: not ready
// alone, ready once a second node joins, and its counters move as the two
// exchange envelopes.
func TestScrapeTwoNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const topic = "metrics/test"
	reg := NewRegistry()
	logs := []Log{{Topic: topic, Entries: 3, Bytes: 300, Checkpoint: 2, PendingAnchors: 1, Refused: map[string]uint64{"device-quota": 4},
		CheckpointTime: time.Unix(1_764_000_000, 0), AnchoredBy: map[string]uint64{"opentimestamps": 1}}}
	a := startNode(t, ctx, node.LocalConfig(), node.WithLibp2pOptions(libp2p.PrometheusRegisterer(reg)))
	objects := Objects{Complete: 2, Incomplete: 1, Refused: map[string]uint64{"bad_chunks": 1, "tail_stalls": 0},
		FetchedChunks: 48, ServedChunks: 16, ServedBytes: 16 * 262149}
	gateway := map[string]uint64{"delivered": 7, "sessions_evicted": 0}
	h, err := New(reg, a, WithLogs(func() []Log { return logs }), WithObjects(func() Objects { return objects }),
		WithMQTT(func() map[string]uint64 { return gateway }))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	if code, body := get(t, srv.URL+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz of a running node: %d %q", code, body)
	}
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no peers") {
		t.Fatalf("/readyz without peers: %d %q", code, body)
	}
	before := scrape(t, srv.URL)

	cfgB := node.LocalConfig()
	for _, ma := range a.Addrs() {
		cfgB.BootstrapPeers = append(cfgB.BootstrapPeers, ma.String())
	}
	b := startNode(t, ctx, cfgB)
	subA, err := a.Subscribe(topic)
	if err != nil {
		t.Fatal(err)
	}
	defer subA.Cancel()
	subB, err := b.Subscribe(topic)
	if err != nil {
		t.Fatal(err)
	}
	defer subB.Cancel()
	const count = 3
	for i := range count {
		if _, err := a.Publish(ctx, topic, []byte{'a', byte(i)}, node.WithMinPeers(1)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Publish(ctx, topic, []byte{'b', byte(i)}, node.WithMinPeers(1)); err != nil {
			t.Fatal(err)
		}
	}
	// a delivers its own envelopes too: 2*count on its subscription.
	for range 2 * count {
		if _, err := subA.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with a peer: %d %q", code, body)
	}
	after := scrape(t, srv.URL)

	for _, tc := range []struct {
		name    string
		labels  []string
		before  float64 // -1: absent; anyValue: not checked
		atLeast float64 // in after
	}{
		{"bitmesh_node_running", nil, 1, 1},
		{"bitmesh_peers", nil, 0, 1},
		{"bitmesh_topics", nil, 0, 1},
		{"bitmesh_messages_published_total", nil, 0, count},
		{"bitmesh_messages_received_total", nil, 0, count},
		{"bitmesh_validator_envelopes_total", nil, 0, 2 * count},
		{"bitmesh_validator_signature_checks_total", nil, 0, count},
		{"bitmesh_validator_cache_hits_total", nil, 0, 0},
		{"bitmesh_banned_subjects", []string{"kind", "peer"}, 0, 0},
		{"bitmesh_scored_subjects", []string{"kind", "device"}, 0, 0},
		{"bitmesh_log_entries", []string{"topic", topic}, 3, 3},
		{"bitmesh_log_bytes", []string{"topic", topic}, 300, 300},
		{"bitmesh_log_checkpoint_size", []string{"topic", topic}, 2, 2},
		{"bitmesh_log_anchored_size", []string{"topic", topic}, 0, 0},
		{"bitmesh_log_anchors_pending", []string{"topic", topic}, 1, 1},
		{"bitmesh_log_refused_total", []string{"topic", topic, "reason", "device-quota"}, 4, 4},
		{"bitmesh_log_checkpoint_timestamp_seconds", []string{"topic", topic}, 1_764_000_000, 1_764_000_000},
		{"bitmesh_log_anchor_size", []string{"topic", topic, "kind", "opentimestamps"}, 1, 1},
		{"bitmesh_objects", []string{"state", "complete"}, 2, 2},
		{"bitmesh_objects", []string{"state", "incomplete"}, 1, 1},
		{"bitmesh_object_refused_total", []string{"reason", "bad_chunks"}, 1, 1},
		{"bitmesh_object_refused_total", []string{"reason", "tail_stalls"}, 0, 0},
		{"bitmesh_object_fetched_chunks_total", nil, 48, 48},
		{"bitmesh_object_served_chunks_total", nil, 16, 16},
		{"bitmesh_object_served_bytes_total", nil, 16 * 262149, 16 * 262149},
		{"bitmesh_mqtt_events_total", []string{"event", "delivered"}, 7, 7},
		{"bitmesh_mqtt_events_total", []string{"event", "sessions_evicted"}, 0, 0},
		{"bitmesh_topic_peers", []string{"topic", topic}, anyValue, 1},
		{"bitmesh_validate_seconds", nil, anyValue, 2 * count}, // its sample count
		{"bitmesh_publish_seal_seconds", nil, anyValue, count},
		{"go_goroutines", nil, anyValue, 1},
		{"process_open_fds", nil, anyValue, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := value(before, tc.name, tc.labels...); tc.before != anyValue && got != tc.before {
				t.Errorf("before: %v, want %v", got, tc.before)
			}
			if got := value(after, tc.name, tc.labels...); got < tc.atLeast {
				t.Errorf("after: %v, want at least %v", got, tc.atLeast)
			}
		})
	}
	libp2pSeen := false
	for name := range after {
		libp2pSeen = libp2pSeen || strings.HasPrefix(name, "libp2p_")
	}
	if !libp2pSeen {
		t.Error("no libp2p_ metric: the host did not register with the private registry")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, srv.URL+path); code != http.StatusServiceUnavailable || !strings.Contains(body, "not running") {
			t.Errorf("%s of a closed node: %d %q", path, code, body)
		}
	}
	if got := value(scrape(t, srv.URL), "bitmesh_node_running"); got != 0 {
		t.Errorf("bitmesh_node_running of a closed node = %v", got)
	}
}

// TestDrops: a refused envelope shows under its reason.
func TestDrops(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := startNode(t, ctx, node.LocalConfig())
	h, err := New(nil, n)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	// The node's own device, banned: its validator refuses what it signs.
	if err := n.Ban(antispam.DeviceSubject(n.DeviceID()), time.Hour, "test"); err != nil {
		t.Fatal(err)
	}
	_, err = n.Publish(ctx, "metrics/drops", []byte("x"))
	if err == nil {
		t.Fatal("a banned device's publish accepted")
	}
	fams := scrape(t, srv.URL)
	if got := value(fams, "bitmesh_banned_subjects", "kind", "device"); got != 1 {
		t.Errorf("bitmesh_banned_subjects{kind=device} = %v, want 1", got)
	}
	if got := value(fams, "bitmesh_drops_total", "reason", "banned"); got < 1 {
		t.Fatalf("bitmesh_drops_total{reason=banned} = %v after %v", got, err)
	}
}

// TestHandlerRoutes: only the three read-only endpoints exist.
func TestHandlerRoutes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := startNode(t, ctx, node.LocalConfig())
	h, err := New(nil, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{http.MethodGet, "/metrics", http.StatusOK},
		{http.MethodHead, "/healthz", http.StatusOK},
		{http.MethodGet, "/readyz", http.StatusServiceUnavailable},
		{http.MethodPost, "/metrics", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/healthz", http.StatusMethodNotAllowed},
		{http.MethodGet, "/", http.StatusNotFound},
		{http.MethodGet, "/debug/pprof/", http.StatusNotFound},
		{http.MethodGet, "/v1/info", http.StatusNotFound},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			if rec.Code != tc.code {
				t.Fatalf("%d, want %d: %s", rec.Code, tc.code, rec.Body)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(nil, nil); !errors.Is(err, ErrNilNode) {
		t.Fatalf("nil node: %v", err)
	}
	cfg := node.LocalConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry()
	if _, err := New(reg, n); err != nil {
		t.Fatal(err)
	}
	if _, err := New(reg, n); err == nil {
		t.Fatal("a second node collector in one registry accepted")
	}
}

func TestNewServerBounded(t *testing.T) {
	s := NewServer(http.NotFoundHandler())
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 {
		t.Fatalf("unbounded server: %+v", s)
	}
}

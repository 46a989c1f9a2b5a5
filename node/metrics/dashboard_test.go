package metrics

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bitmesh/bitmesh/node"
)

// metricName finds the metric names in a PromQL expression.
var metricName = regexp.MustCompile(`\b(?:bitmesh|go|process)_[a-z0-9_]+\b`)

// histogramFamily is the suffix of a counter's or a histogram's series.
var histogramFamily = regexp.MustCompile(`_(total|bucket|sum|count)$`)

// fqName reads a Desc's fully qualified name from its String form.
var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// TestDashboardMetricsExist: every metric that deploy/grafana-dashboard.json
// queries is one the node exports, so the dashboard cannot drift from the
// code unnoticed.
func TestDashboardMetricsExist(t *testing.T) {
	b, err := os.ReadFile("../../deploy/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := startNode(t, ctx, node.LocalConfig())
	reg := NewRegistry()
	h, err := New(reg, n)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	exported := map[string]bool{}
	for name := range scrape(t, srv.URL) {
		exported[name] = true
	}
	// The node's own metrics, also those with no sample yet (no drops,
	// no logs): their descriptions.
	descs := make(chan *prometheus.Desc, 64)
	withLogs := &collector{n: n, logs: func() []Log { return nil }, objects: func() Objects { return Objects{} },
		mqtt: func() map[string]uint64 { return nil }}
	go func() { withLogs.Describe(descs); close(descs) }()
	for d := range descs {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			exported[m[1]] = true
		}
	}

	queried := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			for _, name := range metricName.FindAllString(tg.Expr, -1) {
				queried++
				if !exported[name] && !exported[histogramFamily.ReplaceAllString(name, "")] {
					t.Errorf("panel %q queries %s, which the node does not export", p.Title, name)
				}
			}
		}
	}
	if queried < 10 {
		t.Errorf("the dashboard queries %d metrics", queried)
	}
}

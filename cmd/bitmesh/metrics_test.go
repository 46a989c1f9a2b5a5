package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestNodeMetricsEndpoint: `bitmesh node --metrics 127.0.0.1:0` names its
// metrics listener on the ready line and serves /metrics, /healthz and
// /readyz there without a token, with its Merkle logs and libp2p's host
// metrics; the node's bootstrap peer makes it ready.
func TestNodeMetricsEndpoint(t *testing.T) {
	if testing.Short() {
		t.Log("-short: skipping the multi-process test")
		return
	}
	_, readyA := startNodeProc(t, t.TempDir())
	if readyA.Metrics != "" {
		t.Fatalf("metrics %q without --metrics", readyA.Metrics)
	}
	_, readyB := startNodeProc(t, t.TempDir(), "--metrics", "127.0.0.1:0", "--bootstrap", readyA.Addrs[0],
		"--log-topic", "e2e/metrics", "--mqtt", "127.0.0.1:0")
	if readyB.Metrics == "" || readyB.Metrics == readyB.API {
		t.Fatalf("ready line metrics %q (api %q): want a listener of its own", readyB.Metrics, readyB.API)
	}
	base := "http://" + readyB.Metrics
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
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
	for _, tc := range []struct {
		path     string
		contains string
	}{
		{"/healthz", "ok"},
		{"/metrics", "bitmesh_node_running 1"},
		{"/metrics", "go_goroutines"},
		{"/metrics", `bitmesh_log_entries{topic="e2e/metrics"} 0`}, // the meshlog extension, wired
		{"/metrics", `bitmesh_objects{state="complete"} 0`},        // the inventory extension, wired
		{"/metrics", `bitmesh_object_refused_total{reason="tail_stalls"} 0`},
		{"/metrics", `bitmesh_mqtt_events_total{event="sessions_evicted"} 0`}, // the MQTT gateway, wired
		{"/metrics", "libp2p_"},                                               // the host's own metrics, in the same registry
	} {
		if code, body := get(tc.path); code != http.StatusOK || !strings.Contains(body, tc.contains) {
			t.Fatalf("GET %s: %d, body lacks %q:\n%.2000s", tc.path, code, tc.contains, body)
		}
	}
	waitFor(t, 30*time.Second, "/readyz with the bootstrap peer", func() bool {
		code, _ := get("/readyz")
		return code == http.StatusOK
	})
	if code, _ := get("/v1/info"); code != http.StatusNotFound {
		t.Fatalf("the control API's /v1/info on the metrics listener: %d", code)
	}
}

package meshlog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/anchor/meshlog"
	"github.com/bitmesh/bitmesh/node"
	"github.com/bitmesh/bitmesh/node/control"
)

// startLogAPI starts a node logging topic and "empty/topic" (which stays
// empty) and serves its control API, through which the log extension
// mounts its routes.
func startLogAPI(t *testing.T, topic string) (logNode, *httptest.Server, string) {
	t.Helper()
	lc := logConfig(topic)
	lc.Topics = append(lc.Topics, "empty/topic")
	ln := startLog(t, lc, node.LocalConfig())
	token, err := control.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(control.Handler(ln.n, token))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return ln, srv, token
}

func TestRoutes(t *testing.T) {
	const topic = "sensors/temp"
	ln, srv, token := startLogAPI(t, topic)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id, err := ln.n.Publish(ctx, topic, []byte("21.5"))
	if err != nil {
		t.Fatal(err)
	}
	receipt := func(q url.Values) string { return "/v1/logs/receipt?" + q.Encode() }

	// In order: the first receipt finds no checkpoint and signs one.
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		contains                 string
	}{
		{"list", http.MethodGet, "/v1/logs", "", http.StatusOK, `"topic":"sensors/temp"`},
		{"receipt by id signs a checkpoint", http.MethodGet, receipt(url.Values{"topic": {topic}, "id": {id.String()}}), "", http.StatusOK, ""},
		{"receipt by index", http.MethodGet, receipt(url.Values{"topic": {topic}, "index": {"0"}}), "", http.StatusOK, ""},
		{"receipt of an unlogged topic", http.MethodGet, receipt(url.Values{"topic": {"other"}, "index": {"0"}}), "", http.StatusNotFound, "topic not logged"},
		{"receipt beyond the log", http.MethodGet, receipt(url.Values{"topic": {topic}, "index": {"1"}}), "", http.StatusNotFound, "entry 1 of 1"},
		{"receipt of an unlogged id", http.MethodGet, receipt(url.Values{"topic": {topic}, "id": {strings.Repeat("00", len(id))}}), "", http.StatusNotFound, "not in the log"},
		{"receipt bad id", http.MethodGet, receipt(url.Values{"topic": {topic}, "id": {"zz"}}), "", http.StatusBadRequest, "hex bytes"},
		{"receipt bad index", http.MethodGet, receipt(url.Values{"topic": {topic}, "index": {"-1"}}), "", http.StatusBadRequest, "index:"},
		{"checkpoint", http.MethodPost, "/v1/logs/checkpoint", `{"topic":"sensors/temp"}`, http.StatusOK, `"checkpoint":"`},
		{"checkpoint of an empty log", http.MethodPost, "/v1/logs/checkpoint", `{"topic":"empty/topic"}`, http.StatusConflict, "is empty"},
		{"checkpoint of an unlogged topic", http.MethodPost, "/v1/logs/checkpoint", `{"topic":"other"}`, http.StatusNotFound, "topic not logged"},
		{"checkpoint duplicate topic", http.MethodPost, "/v1/logs/checkpoint", `{"topic":"a","topic":"b"}`, http.StatusBadRequest, `bad checkpoint request: control: duplicate key`},
		{"checkpoint trailing garbage", http.MethodPost, "/v1/logs/checkpoint", `{"topic":"a"}{}`, http.StatusBadRequest, "trailing data"},
		{"checkpoint unknown field", http.MethodPost, "/v1/logs/checkpoint", `{"TOPIC":"a"}`, http.StatusBadRequest, "unknown field"},
		{"checkpoint too large", http.MethodPost, "/v1/logs/checkpoint", `{"topic":"` + strings.Repeat("x", 1<<12) + `"}`, http.StatusRequestEntityTooLarge, "too large"},
		{"checkpoint by GET", http.MethodGet, "/v1/logs/checkpoint", "", http.StatusMethodNotAllowed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.contains) {
				t.Fatalf("status %d, body %s; want %d and %q", resp.StatusCode, b, tc.status, tc.contains)
			}
			if tc.status == http.StatusOK && strings.HasPrefix(tc.path, "/v1/logs/receipt") {
				r, err := anchor.ParseReceipt(b)
				if err != nil {
					t.Fatal(err)
				}
				origin := meshlog.Origin(ln.n.NetworkName(), ln.n.DeviceID(), topic)
				if env, err := anchor.VerifyReceipt(r, ln.n.DeviceID(), origin, nil, 0); err != nil || string(env.Payload) != "21.5" {
					t.Fatalf("receipt: %v", err)
				}
			}
		})
	}
}

// TestRoutesClient: the routes answer control.Client.Do, the door any
// client of an extension's routes (such as bitmesh log) goes through, and
// GET /v1/logs gives the node's LogInfo JSON unchanged.
func TestRoutesClient(t *testing.T) {
	const topic = "sensors/temp"
	ln, srv, token := startLogAPI(t, topic)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id, err := ln.n.Publish(ctx, topic, []byte("21.5"))
	if err != nil {
		t.Fatal(err)
	}
	c := control.NewClient(control.Endpoint{Addr: strings.TrimPrefix(srv.URL, "http://"), Token: token})
	defer c.Close()

	get := func(method, path string, body any) []byte {
		t.Helper()
		resp, err := c.Do(ctx, method, path, body)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if _, err := anchor.ParseReceipt(get(http.MethodGet, "/v1/logs/receipt?topic=sensors%2Ftemp&id="+id.String(), nil)); err != nil {
		t.Fatalf("receipt: %v", err)
	}
	type checkpointRequest struct {
		Topic string `json:"topic"`
	}
	if note := get(http.MethodPost, "/v1/logs/checkpoint", checkpointRequest{topic}); !bytes.Contains(note, []byte("checkpoint")) {
		t.Fatalf("checkpoint answer %s", note)
	}
	if _, err := c.Do(ctx, http.MethodPost, "/v1/logs/checkpoint", checkpointRequest{"other"}); err == nil || !strings.Contains(err.Error(), "topic not logged") {
		t.Fatalf("checkpoint of an unlogged topic: %v", err)
	}
	var logs []json.RawMessage
	if err := json.Unmarshal(get(http.MethodGet, "/v1/logs", nil), &logs); err != nil || len(logs) != 2 {
		t.Fatalf("logs %s: %v", logs, err)
	}
	got, err := json.Marshal(logs)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(ln.log.Logs())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("client JSON\n%s\nnode JSON\n%s", got, want)
	}
}

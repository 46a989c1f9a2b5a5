package control

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/node"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func startAPI(t *testing.T, opts ...node.Option) (*node.Node, *httptest.Server, string) {
	t.Helper()
	n, err := node.New(node.LocalConfig(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	token, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(n, token))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		n.Close()
	})
	return n, srv, token
}

func TestEndpointFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadEndpoint(dir); err == nil || !strings.Contains(err.Error(), "no running node") {
		t.Fatalf("ReadEndpoint without a file: %v", err)
	}
	want := Endpoint{Addr: "127.0.0.1:1234", Token: "abc"}
	if err := WriteEndpoint(dir, want); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, EndpointFileName))
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Fatalf("endpoint file mode %04o, want 0600", perm)
	}
	if got, err := ReadEndpoint(dir); err != nil || got != want {
		t.Fatalf("ReadEndpoint = %+v, %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(dir, EndpointFileName), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadEndpoint(dir); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("ReadEndpoint of a corrupt file: %v", err)
	}
}

func TestAuth(t *testing.T) {
	_, srv, token := startAPI(t)
	for _, tc := range []struct {
		name, header string
		want         int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"wrong token", "Bearer " + strings.Repeat("0", len(token)), http.StatusUnauthorized},
		{"token without scheme", token, http.StatusUnauthorized},
		{"right token", "Bearer " + token, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/info", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

func TestPublishSubscribeRoundTrip(t *testing.T) {
	n, srv, token := startAPI(t)
	c := NewClient(Endpoint{Addr: strings.TrimPrefix(srv.URL, "http://"), Token: token})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.DeviceID != n.DeviceID().String() || info.PeerID != n.PeerID().String() || len(info.Addrs) == 0 {
		t.Fatalf("info %+v does not describe the node", info)
	}

	payloads := [][]byte{[]byte("text payload"), {0xff, 0x00, 0xfe}} // UTF-8, then binary
	ready := make(chan struct{})
	got := make(chan Message, len(payloads))
	done := make(chan error, 1)
	go func() {
		n := 0
		done <- c.Subscribe(ctx, "api/test", func() { close(ready) }, func(m Message) error {
			got <- m
			if n++; n == len(payloads) {
				return ErrStop
			}
			return nil
		})
	}()
	<-ready
	for _, p := range payloads {
		if _, err := c.Publish(ctx, "api/test", p, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i, p := range payloads {
		m := <-got
		b, err := m.Payload()
		if err != nil || string(b) != string(p) {
			t.Fatalf("message %d payload %x (%v), want %x", i, b, err, p)
		}
		if (m.Data != nil) != (i == 0) {
			t.Fatalf("message %d: data=%v data_b64=%q: want text as data, binary as data_b64", i, m.Data, m.DataB64)
		}
		if m.From != n.DeviceID().String() || m.Topic != "api/test" {
			t.Fatalf("message %d from %s on %s", i, m.From, m.Topic)
		}
	}
}

func TestBadRequests(t *testing.T) {
	_, srv, token := startAPI(t)
	c := NewClient(Endpoint{Addr: strings.TrimPrefix(srv.URL, "http://"), Token: token})
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Publish(ctx, "bad topic", []byte("x"), 0); err == nil || !strings.Contains(err.Error(), "printable") {
		t.Fatalf("publish on a bad topic: %v", err)
	}
	if err := c.Subscribe(ctx, "", nil, func(Message) error { return nil }); err == nil {
		t.Fatal("subscribe to an empty topic succeeded")
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := c.Publish(short, "lonely", []byte("x"), 1); err == nil {
		t.Fatal("publish waiting for a peer that never comes succeeded")
	}
	bad := NewClient(Endpoint{Addr: "127.0.0.1:1", Token: token})
	defer bad.Close()
	if _, err := bad.Info(ctx); err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Fatalf("info from no node: %v", err)
	}
}

// typo changes the last character of s to another bech32 character, so
// that the checksum fails (a fixed replacement is no change one time in
// 32).
func typo(s string) string {
	last := "q"
	if s[len(s)-1] == 'q' {
		last = "p"
	}
	return s[:len(s)-1] + last
}

func TestParseSubject(t *testing.T) {
	key, _ := identity.Generate()
	dev := key.DeviceID()
	pid, _ := dev.PeerID()
	for _, tc := range []struct {
		in   string
		want antispam.Subject
		ok   bool
	}{
		{dev.String(), antispam.DeviceSubject(dev), true},
		{"device:" + dev.String(), antispam.DeviceSubject(dev), true},
		{pid.String(), antispam.PeerSubject(pid), true},
		{"peer:" + pid.String(), antispam.PeerSubject(pid), true},
		{"peer:" + dev.String(), antispam.Subject{}, false},
		{"device:" + pid.String(), antispam.Subject{}, false},
		{typo(dev.String()), antispam.Subject{}, false},
		{"", antispam.Subject{}, false},
		{"nonsense", antispam.Subject{}, false},
	} {
		got, err := ParseSubject(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSubject(%q) = %v, %v; want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestBanUnbanPeers(t *testing.T) {
	_, srv, token := startAPI(t)
	c := NewClient(Endpoint{Addr: strings.TrimPrefix(srv.URL, "http://"), Token: token})
	defer c.Close()
	ctx := context.Background()
	key, _ := identity.Generate()
	dev := key.DeviceID().String()
	if err := c.Ban(ctx, dev, time.Hour, "test"); err != nil {
		t.Fatal(err)
	}
	peers, err := c.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 1 || peers[0].Subject != "device:"+dev || peers[0].BanUntil == nil || peers[0].BanReason != "test" {
		t.Fatalf("peers after ban: %+v", peers)
	}
	if err := c.Unban(ctx, dev); err != nil {
		t.Fatal(err)
	}
	if peers, _ := c.Peers(ctx); len(peers) != 0 {
		t.Fatalf("peers after unban: %+v", peers)
	}
	if err := c.Ban(ctx, "nonsense", 0, ""); err == nil {
		t.Fatal("banning a nonsense subject succeeded")
	}
}

// TestPublishStatusContract checks POST /v1/publish from outside, as an
// HTTP client sees it: 200 while the device is within its rate, then 429
// with a Retry-After in whole seconds; 503 when min_peers are not there.
func TestPublishStatusContract(t *testing.T) {
	cfg := node.LocalConfig()
	cfg.Rate.PerSender, cfg.Rate.SenderBurst = 0.5, 2 // own burst 1, then one per 2 s
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	token, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(n, token))
	defer srv.Close()
	post := func(body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/publish", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if r := post(`{"topic":"t","data":"one"}`); r.StatusCode != http.StatusOK {
		t.Fatalf("first publish: %s", r.Status)
	}
	r := post(`{"topic":"t","data":"two"}`)
	if r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("publish beyond the rate: %s, want 429", r.Status)
	}
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 || s > 2 {
		t.Errorf("Retry-After %q, want 1 or 2 seconds", r.Header.Get("Retry-After"))
	}

	// The rate is spent; a fresh node answers the peer check.
	_, srv2, token2 := startAPI(t)
	c := NewClient(Endpoint{Addr: strings.TrimPrefix(srv2.URL, "http://"), Token: token2})
	defer c.Close()
	wait := 100
	resp, err := c.do(context.Background(), http.MethodPost, "/v1/publish", PublishRequest{Topic: "t", Data: "x", MinPeers: 1, PeerWaitMs: &wait})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusServiceUnavailable || !errors.Is(err, node.ErrNoTopicPeers) {
		t.Fatalf("publish with min_peers 1 and no peers: %v %v, want 503", resp, err)
	}
	// The client maps 429 as it does 503.
	c1 := NewClient(Endpoint{Addr: strings.TrimPrefix(srv.URL, "http://"), Token: token})
	defer c1.Close()
	if _, err := c1.Publish(context.Background(), "t", []byte("three"), 0); !errors.As(err, &se) || !errors.Is(err, node.ErrPublishRate) || se.RetryAfter < time.Second {
		t.Fatalf("client publish beyond the rate: %v, want ErrPublishRate with RetryAfter", err)
	}
}

package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/node/control"
)

func TestIsLoopbackAddr(t *testing.T) {
	for _, tc := range []struct {
		name, addr string
		want       bool
		wantErr    bool
	}{
		{"IPv4 loopback", "127.0.0.1:0", true, false},
		{"other IPv4 loopback", "127.8.9.10:4000", true, false},
		{"IPv6 loopback", "[::1]:0", true, false},
		{"IPv4-mapped loopback", "[::ffff:127.0.0.1]:0", true, false},
		{"localhost", "localhost:0", true, false},
		{"LOCALHOST", "LOCALHOST:0", true, false},
		{"every interface", ":0", false, false},
		{"IPv4 unspecified", "0.0.0.0:4000", false, false},
		{"IPv6 unspecified", "[::]:4000", false, false},
		{"LAN address", "192.168.1.5:4000", false, false},
		{"other name", "example.com:4000", false, false},
		{"name ending in localhost", "evil.localhost.example:4000", false, false},
		{"no port", "127.0.0.1", false, true},
		{"empty", "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := isLoopbackAddr(tc.addr)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Fatalf("isLoopbackAddr(%q) = %v, %v; want %v (error %v)", tc.addr, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestHardenedFlags covers flags refused before any node starts. Every node
// row names a passphrase file that does not exist, so a row that gets past
// the flag checks (and the remote-API warning) stops there and never opens
// a socket.
func TestHardenedFlags(t *testing.T) {
	dataDir := t.TempDir()
	node := func(extra ...string) []string {
		return append([]string{"node", "--data", dataDir, "--passphrase-file", "/nonexistent/pass"}, extra...)
	}
	verify := func(extra ...string) []string {
		return append([]string{"log", "verify", "--log-key", "bmdev1nope", "--origin", "o"}, append(extra, "/nonexistent/receipt")...)
	}
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		contains []string
		lacks    string
	}{
		{"api on every interface", node("--api", "0.0.0.0:0"), 2, []string{"not a loopback address", "--api-allow-remote"}, ""},
		{"api with empty host", node("--api", ":4737"), 2, []string{"not a loopback address"}, ""},
		{"api on a LAN address", node("--api", "192.0.2.1:4737"), 2, []string{"bearer token"}, ""},
		{"api without port", node("--api", "127.0.0.1"), 2, []string{"missing port"}, ""},
		{"api on loopback", node("--api", "127.0.0.1:0"), 1, []string{"passphrase"}, "only protection"},
		{"api on localhost", node("--api", "localhost:0"), 1, []string{"passphrase"}, "only protection"},
		{"remote api allowed, with a warning", node("--api", "192.0.2.1:4737", "--api-allow-remote"), 1,
			[]string{"level=WARN", "only protection", "api.json", "passphrase"}, ""},
		{"negative min-cosigners", verify("--min-cosigners", "-1"), 2, []string{"--min-cosigners -1: want 0 or more", "Usage:"}, ""},
		{"zero min-cosigners", verify("--min-cosigners", "0"), 2, []string{"--log-key"}, "want 0 or more"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runArgs(tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			for _, c := range tc.contains {
				if !strings.Contains(out+errOut, c) {
					t.Fatalf("output lacks %q\nstdout: %s\nstderr: %s", c, out, errOut)
				}
			}
			if tc.lacks != "" && strings.Contains(out+errOut, tc.lacks) {
				t.Fatalf("output has %q\nstdout: %s\nstderr: %s", tc.lacks, out, errOut)
			}
		})
	}
}

// TestPeersEscapesBanReasons serves GET /v1/peers from a stub, so the rows
// need no node.
func TestPeersEscapesBanReasons(t *testing.T) {
	until := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, reason, want string
	}{
		{"printable stays as is", "spam: 12 invalid envelopes", "spam: 12 invalid envelopes"},
		{"printable non-ASCII stays as is", "flood über alles", "flood über alles"},
		{"terminal escape", "x\x1b[2J\x1b]0;owned\x07", `"x\x1b[2J\x1b]0;owned\a"`},
		{"forged row", "a\ndevice:bmdev1fake  false  0", `"a\ndevice:bmdev1fake  false  0"`},
		{"carriage return", "ok\rbanned by operator", `"ok\rbanned by operator"`},
		{"tab breaks the columns", "a\tb", `"a\tb"`},
		{"bidi override", "abc\u202edef", `"abc\u202edef"`},
		{"C1 control", "a\u009bb", `"a\u009bb"`},
		{"DEL", "a\x7fb", `"a\x7fb"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peers := []control.PeerInfo{{Subject: "device:bmdev1example", BanUntil: &until, BanReason: tc.reason}}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/peers" || r.Header.Get("Authorization") != "Bearer tok" {
					http.Error(w, "unexpected request", http.StatusBadRequest)
					return
				}
				_ = json.NewEncoder(w).Encode(peers)
			}))
			defer srv.Close()
			dir := t.TempDir()
			if err := control.WriteEndpoint(dir, control.Endpoint{Addr: strings.TrimPrefix(srv.URL, "http://"), Token: "tok"}); err != nil {
				t.Fatal(err)
			}

			code, out, errOut := runArgs("peers", "--data", dir)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(lines) != 2 || !strings.HasSuffix(lines[1], tc.want) {
				t.Fatalf("output %q: want a header and one row ending in %q", out, tc.want)
			}
			for _, r := range out {
				if r != '\n' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u202e') {
					t.Fatalf("output %q holds control character %U", out, r)
				}
			}

			code, out, errOut = runArgs("peers", "--data", dir, "--json")
			var got []control.PeerInfo
			if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || len(got) != 1 || got[0].BanReason != tc.reason {
				t.Fatalf("--json: exit %d, %v, %+v (%s)", code, err, got, errOut)
			}
		})
	}
}

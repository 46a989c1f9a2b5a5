package main

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/mqtt"
	"github.com/bitmesh/bitmesh/node"
)

func TestNodeConfig(t *testing.T) {
	const peerA = "/ip4/10.0.0.1/tcp/4737/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf"
	const peerB = "/ip4/10.0.0.2/udp/4737/quic-v1/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf"
	defaults := node.DefaultConfig()
	for _, tc := range []struct {
		name  string
		args  []string
		usage bool // want a usage error
		check func(t *testing.T, cfg node.Config, o nodeOptions)
	}{
		{"defaults", nil, false, func(t *testing.T, cfg node.Config, o nodeOptions) {
			if cfg.DataDir != defaults.DataDir || cfg.Network != node.DefaultNetwork || !slices.Equal(cfg.ListenAddrs, defaults.ListenAddrs) ||
				len(cfg.BootstrapPeers) != 0 || !cfg.MDNS || !cfg.NATPortMap || len(cfg.Operators) != 0 {
				t.Errorf("config %+v", cfg)
			}
			if o.api != "127.0.0.1:0" || !o.apiLoopback || o.logLevel.String() != "INFO" || len(o.logs.Topics) != 0 || !o.logs.Witness || len(o.calendars) != 0 {
				t.Errorf("options %+v", o)
			}
		}},
		{"repeated --listen and --bootstrap", []string{"--listen", "/ip4/0.0.0.0/tcp/1", "--listen", "/ip4/0.0.0.0/udp/1/quic-v1",
			"--bootstrap", peerA, "--bootstrap", peerB}, false, func(t *testing.T, cfg node.Config, _ nodeOptions) {
			if !slices.Equal(cfg.ListenAddrs, []string{"/ip4/0.0.0.0/tcp/1", "/ip4/0.0.0.0/udp/1/quic-v1"}) || !slices.Equal(cfg.BootstrapPeers, []string{peerA, peerB}) {
				t.Errorf("listen %v, bootstrap %v", cfg.ListenAddrs, cfg.BootstrapPeers)
			}
		}},
		{"everything else", []string{"--data", "/tmp/x", "--network", "plant1", "--no-mdns", "--no-nat", "--api", "[::1]:9000",
			"--log-level", "debug", "--log-topic", "a", "--log-topic", "b", "--no-witness", "--checkpoint-every", "7", "--checkpoint-interval", "3s",
			"--anchor-calendar", "https://c1", "--anchor-calendar", "https://c2", "--anchor-interval", "2h"}, false, func(t *testing.T, cfg node.Config, o nodeOptions) {
			if cfg.DataDir != "/tmp/x" || cfg.Network != "plant1" || cfg.MDNS || cfg.NATPortMap {
				t.Errorf("config %+v", cfg)
			}
			if o.api != "[::1]:9000" || o.logLevel.String() != "DEBUG" || !slices.Equal(o.logs.Topics, []string{"a", "b"}) || o.logs.Witness ||
				o.logs.CheckpointEvery != 7 || o.logs.CheckpointInterval != 3*time.Second || o.logs.AnchorInterval != 2*time.Hour ||
				!slices.Equal(o.calendars, []string{"https://c1", "https://c2"}) {
				t.Errorf("options %+v", o)
			}
		}},
		{"remote API allowed", []string{"--api", "0.0.0.0:9000", "--api-allow-remote"}, false, func(t *testing.T, _ node.Config, o nodeOptions) {
			if o.apiLoopback {
				t.Error("0.0.0.0 taken for loopback")
			}
		}},
		{"remote API refused", []string{"--api", "0.0.0.0:9000"}, true, nil},
		{"log format json", []string{"--log-format", "json"}, false, func(t *testing.T, _ node.Config, o nodeOptions) {
			if o.logFormat != "json" {
				t.Errorf("log format %q", o.logFormat)
			}
		}},
		{"log format defaults to text", nil, false, func(t *testing.T, _ node.Config, o nodeOptions) {
			if o.logFormat != "text" {
				t.Errorf("log format %q", o.logFormat)
			}
		}},
		{"unknown log format", []string{"--log-format", "xml"}, true, nil},
		{"low-memory profile", []string{"--profile", "low-memory"}, false, func(t *testing.T, cfg node.Config, _ nodeOptions) {
			want := node.LowMemoryConfig()
			if cfg.ConnHigh != want.ConnHigh || cfg.MaxEnvelopeSize != want.MaxEnvelopeSize || cfg.SeenCacheSize != want.SeenCacheSize {
				t.Errorf("config %+v, want LowMemoryConfig's limits", cfg)
			}
		}},
		{"low-memory profile bounds the MQTT broker", []string{"--profile", "low-memory", "--mqtt", "127.0.0.1:1883", "--mqtt-max-queued", "64"}, false,
			func(t *testing.T, _ node.Config, o nodeOptions) {
				low := mqtt.LowMemoryConfig()
				if o.mqtt == nil || o.mqtt.MaxClients != low.MaxClients || o.mqtt.MaxRetained != low.MaxRetained ||
					o.mqtt.MaxSubscriptions != low.MaxSubscriptions || o.mqtt.MaxPending != low.MaxPending || o.mqtt.MaxQueued != 64 {
					t.Errorf("MQTT config %+v, want LowMemoryConfig's bounds and the MaxQueued given", o.mqtt)
				}
			}},
		{"default profile MQTT bounds", []string{"--mqtt", "127.0.0.1:1883"}, false, func(t *testing.T, _ node.Config, o nodeOptions) {
			def := mqtt.DefaultConfig()
			if o.mqtt == nil || o.mqtt.MaxClients != def.MaxClients || o.mqtt.MaxQueued != def.MaxQueued {
				t.Errorf("MQTT config %+v, want DefaultConfig's bounds", o.mqtt)
			}
		}},
		{"unknown profile", []string{"--profile", "tiny"}, true, nil},
		{"metrics off by default", nil, false, func(t *testing.T, _ node.Config, o nodeOptions) {
			if o.metrics != "" {
				t.Errorf("metrics %q", o.metrics)
			}
		}},
		{"metrics on loopback", []string{"--metrics", "localhost:9100"}, false, func(t *testing.T, _ node.Config, o nodeOptions) {
			if o.metrics != "localhost:9100" || !o.metricsLoop {
				t.Errorf("metrics %q loopback %v", o.metrics, o.metricsLoop)
			}
		}},
		{"remote metrics allowed", []string{"--metrics", "0.0.0.0:9100", "--metrics-allow-remote"}, false, func(t *testing.T, _ node.Config, o nodeOptions) {
			if o.metrics != "0.0.0.0:9100" || o.metricsLoop {
				t.Errorf("metrics %q loopback %v", o.metrics, o.metricsLoop)
			}
		}},
		{"remote metrics refused", []string{"--metrics", "0.0.0.0:9100"}, true, nil},
		{"remote metrics refused under --api-allow-remote", []string{"--metrics", "[::]:9100", "--api-allow-remote"}, true, nil},
		{"metrics without port", []string{"--metrics", "127.0.0.1"}, true, nil},
		{"API without port", []string{"--api", "127.0.0.1"}, true, nil},
		{"bad log level", []string{"--log-level", "loud"}, true, nil},
		{"bad listen", []string{"--listen", "tcp/4737"}, true, nil},
		{"bootstrap without peer ID", []string{"--bootstrap", "/ip4/1.2.3.4/tcp/1"}, true, nil},
		{"bad operator", []string{"--operator", "bmdev1nope"}, true, nil},
		{"zero checkpoint-every", []string{"--checkpoint-every", "0"}, true, nil},
		{"zero anchor interval with a calendar", []string{"--anchor-calendar", "https://c", "--anchor-interval", "0s"}, true, nil},
		{"bad duration", []string{"--checkpoint-interval", "soon"}, true, nil},
		{"positional argument", []string{"extra"}, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, o, err := nodeConfig(tc.args, io.Discard)
			if tc.usage {
				if !errors.Is(err, errUsage) {
					t.Fatalf("err = %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, cfg, o)
		})
	}
}

// TestLogHandler: text or JSON, and no time of its own under journald,
// which stamps every line itself.
func TestLogHandler(t *testing.T) {
	for _, tc := range []struct {
		format   string
		journal  bool
		want     string
		wantTime bool
	}{
		{"text", false, `level=INFO msg=started peers=3`, true},
		{"text", true, `level=INFO msg=started peers=3`, false},
		{"json", false, `"level":"INFO","msg":"started","peers":3}`, true},
		{"json", true, `{"level":"INFO","msg":"started","peers":3}`, false},
	} {
		var b strings.Builder
		slog.New(logHandler(&b, tc.format, slog.LevelInfo, tc.journal)).Info("started", "peers", 3)
		slog.New(logHandler(&b, tc.format, slog.LevelInfo, tc.journal)).Debug("hidden")
		out := b.String()
		hasTime := strings.Contains(out, "time=") || strings.Contains(out, `"time":`)
		if !strings.Contains(out, tc.want) || hasTime != tc.wantTime || strings.Count(out, "\n") != 1 {
			t.Errorf("format %s, journal %v: %q; want %q, time %v, one line", tc.format, tc.journal, out, tc.want, tc.wantTime)
		}
	}
}

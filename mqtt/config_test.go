package mqtt

import (
	"errors"
	"testing"
	"time"
)

func TestMapping(t *testing.T) {
	ident := DefaultConfig()
	mapped := DefaultConfig()
	mapped.Mappings = []Mapping{{MQTT: "plant/+/temp", Mesh: "sensors/temp"}, {MQTT: "alerts", Mesh: "alerts/all"}}
	for _, tc := range []struct {
		name string
		cfg  Config
		in   string
		mesh string
	}{
		{"identity", ident, "sensors/t", "sensors/t"},
		{"identity: receipt topic stays local", ident, ReceiptTopicPrefix + "sensors/t", ""},
		{"identity: $SYS stays local", ident, "$SYS/x", ""},
		{"identity: not a valid mesh topic", ident, "has space", ""},
		{"mapped wildcard", mapped, "plant/7/temp", "sensors/temp"},
		{"mapped exact", mapped, "alerts", "alerts/all"},
		{"unmapped", mapped, "plant/7/humidity", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cfg.toMesh(tc.in); got != tc.mesh {
				t.Fatalf("toMesh(%q) = %q, want %q", tc.in, got, tc.mesh)
			}
		})
	}
	for _, tc := range []struct {
		name              string
		cfg               Config
		mesh, entry, want string
	}{
		{"identity: plain message", ident, "sensors/t", "", "sensors/t"},
		{"identity: entry of its name", ident, "sensors/t", "sensors/t", "sensors/t"},
		{"identity: entry named otherwise", ident, "sensors/t", "other", ""},
		{"mapped: entry matching the filter", mapped, "sensors/temp", "plant/3/temp", "plant/3/temp"},
		{"mapped: entry outside the filter", mapped, "sensors/temp", "plant/3/hum", ""},
		{"mapped: plain message, exact filter", mapped, "alerts/all", "", "alerts"},
		{"mapped: plain message, wildcard filter", mapped, "sensors/temp", "", ""},
		{"mapped: unknown mesh topic", mapped, "x", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cfg.toMQTT(tc.mesh, tc.entry); got != tc.want {
				t.Fatalf("toMQTT(%q, %q) = %q, want %q", tc.mesh, tc.entry, got, tc.want)
			}
		})
	}
}

func TestMatchFilter(t *testing.T) {
	for _, tc := range []struct {
		f, topic string
		want     bool
	}{
		{"a/b", "a/b", true}, {"a/+", "a/b", true}, {"a/+", "a/b/c", false}, {"a/#", "a", true},
		{"a/#", "a/b/c", true}, {"#", "$SYS/x", false}, {"+/x", "$SYS/x", false}, {"a/b", "a", false},
	} {
		if got := matchFilter(tc.f, tc.topic); got != tc.want {
			t.Errorf("matchFilter(%q, %q) = %v, want %v", tc.f, tc.topic, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"nothing to run", func(c *Config) { c.Listen = "" }},
		{"TLS half set", func(c *Config) { c.TLSCert = "x" }},
		{"bridge scheme", func(c *Config) { c.Bridge = "http://x" }},
		{"zero linger", func(c *Config) { c.Linger = 0 }},
		{"batch smaller than a message", func(c *Config) { c.MaxBatchBytes = c.MaxPayload }},
		{"bad mapping filter", func(c *Config) { c.Mappings = []Mapping{{MQTT: "a/#/b", Mesh: "a"}} }},
		{"bad mesh topic", func(c *Config) { c.Mappings = []Mapping{{MQTT: "a", Mesh: ""}} }},
		{"user without bcrypt", func(c *Config) { c.Users = []User{{Name: "u", PasswordHash: "plain"}} }},
		{"no queue", func(c *Config) { c.MaxQueued = 0 }},
		{"no subscriptions", func(c *Config) { c.MaxSubscriptions = 0 }},
		{"no retained", func(c *Config) { c.MaxRetained = 0 }},
		{"no connect timeout", func(c *Config) { c.ConnectTimeout = 0 }},
		{"queue beyond packet IDs", func(c *Config) { c.MaxQueued = 1 << 16 }},
		{"session expiry under a second", func(c *Config) { c.SessionExpiry = time.Millisecond }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			if err := c.Validate(); !errors.Is(err, ErrConfig) {
				t.Fatalf("got %v, want ErrConfig", err)
			}
		})
	}
}

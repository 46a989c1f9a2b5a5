package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestConfigDefaultRoundTrips: the file `bitmesh config default` prints
// gives, through --config, exactly the configuration of no flags at all.
func TestConfigDefaultRoundTrips(t *testing.T) {
	code, out, errOut := runArgs("config", "default")
	if code != 0 || !strings.Contains(out, "\nlog-level: info\n") {
		t.Fatalf("config default: exit %d, %q, stderr %q", code, out, errOut)
	}
	path := filepath.Join(t.TempDir(), "bitmesh.yaml")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	wantCfg, wantOpts, err := nodeConfig(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg, opts, err := nodeConfig([]string{"--config", path}, io.Discard)
	if err != nil {
		t.Fatalf("--config of the default file: %v", err)
	}
	if !reflect.DeepEqual(cfg, wantCfg) || !reflect.DeepEqual(opts, wantOpts) {
		t.Errorf("--config default file gave\n%+v\n%+v\nwant\n%+v\n%+v", cfg, opts, wantCfg, wantOpts)
	}
	// Every flag of bitmesh node is a key of the file.
	newNodeFlags(io.Discard).fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "config" && !strings.Contains(out, "\n"+f.Name+": ") {
			t.Errorf("config default lacks %q", f.Name)
		}
	})
}

func TestConfigFile(t *testing.T) {
	const peer = "/ip4/10.0.0.1/tcp/4737/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf"
	write := func(t *testing.T, body string) string {
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	t.Run("values, lists, and the command line winning", func(t *testing.T) {
		path := write(t, "network: plant1\nlog-level: debug\nno-mdns: true\nlog-topic: [a, b]\nbootstrap:\n  - "+peer+"\ncheckpoint-interval: 3s\n")
		cfg, o, err := nodeConfig([]string{"--config", path, "--log-level", "warn"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Network != "plant1" || cfg.MDNS || !slices.Equal(cfg.BootstrapPeers, []string{peer}) ||
			!slices.Equal(o.logs.Topics, []string{"a", "b"}) || o.logs.CheckpointInterval.String() != "3s" || o.logLevel.String() != "WARN" {
			t.Errorf("config %+v, options %+v", cfg, o)
		}
	})
	for _, tc := range []struct{ name, body, want string }{
		{"unknown key names its line", "network: x\nfrobnicate: 1\n", "line 2: unknown key \"frobnicate\""},
		{"config inside config", "config: other.yaml\n", "line 1: unknown key \"config\""},
		{"key twice", "network: a\nnetwork: b\n", "line 2: key \"network\" given twice"},
		{"bad value names its line", "\n\ncheckpoint-interval: soon\n", "line 3: checkpoint-interval"},
		{"a list for a single flag", "network: [a, b]\n", "line 1: network takes one value"},
		{"not a mapping", "- a\n- b\n", "want a mapping"},
		{"a value the node refuses", "api: 0.0.0.0:9000\n", "not a loopback address"},
		{"nested values", "log-topic:\n  - {a: 1}\n", "plain values only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runArgs("node", "--config", write(t, tc.body))
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", code, errOut, tc.want)
			}
		})
	}
	if code, _, errOut := runArgs("node", "--config", filepath.Join(t.TempDir(), "missing.yaml")); code != 2 || !strings.Contains(errOut, "missing.yaml") {
		t.Errorf("missing file: exit %d, %q", code, errOut)
	}
	if code, _, _ := runArgs("config", "frob"); code != 2 {
		t.Errorf("config frob: exit %d, want 2", code)
	}
}

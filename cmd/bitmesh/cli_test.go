package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/bitmesh/bitmesh/internal/cli"
	"github.com/bitmesh/bitmesh/internal/version"
)

func runArgs(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestCLIUsage pins exit codes and that usage and help text go to
// stderr, leaving stdout to results.
func TestCLIUsage(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		contains string // in stderr
	}{
		{"no command", nil, 2, "Commands:"},
		{"help", []string{"help"}, 0, "Commands:"},
		{"--help", []string{"--help"}, 0, "Commands:"},
		{"help lists sim, version, help", []string{"help"}, 0, "  sim "},
		{"help node", []string{"help", "node"}, 0, "--listen"},
		{"help node flag style", []string{"help", "node"}, 0, "  --bootstrap multiaddr\n"},
		{"help log", []string{"help", "log"}, 0, "checkpoint"},
		{"help log verify", []string{"help", "log", "verify"}, 0, "--min-cosigners"},
		{"help cert issue", []string{"help", "cert", "issue"}, 0, "--operator-data"},
		{"help version", []string{"help", "version"}, 0, "--json"},
		{"help help", []string{"help", "help"}, 0, "Commands:"},
		{"help --help", []string{"help", "--help"}, 0, "Commands:"},
		{"help unknown", []string{"help", "frobnicate"}, 2, `unknown command "frobnicate"`},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"node help", []string{"node", "--help"}, 0, "--bootstrap"},
		{"pub help", []string{"pub", "--help"}, 0, "--min-peers"},
		{"sub help", []string{"sub", "--help"}, 0, "--count"},
		{"pub missing message", []string{"pub", "t"}, 2, "want 2 argument(s)"},
		{"sub extra argument", []string{"sub", "a", "b"}, 2, "want 1 argument(s)"},
		{"bad flag", []string{"id", "--nope"}, 2, "flag provided but not defined"},
		{"ban without subject", []string{"ban"}, 2, "want 1 argument(s)"},
		{"ban help", []string{"ban", "--help"}, 0, "--reason"},
		{"unban help", []string{"unban", "--help"}, 0, "--json"},
		{"log checkpoint help", []string{"log", "checkpoint", "--help"}, 0, "--json"},
		{"log proof bad index", []string{"log", "proof", "--data", "/nonexistent/bitmesh", "t", "x"}, 2, `INDEX "x"`},
		{"log without subcommand", []string{"log"}, 2, "SUBCOMMAND"},
		{"log verify without --log-key", []string{"log", "verify", "--origin", "o", "r.json"}, 2, "--log-key and --origin are required"},
		{"log verify bad --log-key", []string{"log", "verify", "--log-key", "bmdev1nope", "--origin", "o", "r.json"}, 2, "--log-key"},
		{"cert issue without --device", []string{"cert", "issue", "--operator-data", "/nonexistent/op", "--out", "x"}, 2, "are required"},
		{"cert revoke without --out or --data", []string{"cert", "revoke", "--operator-data", "/nonexistent/op", "--device", "bmdev1x"}, 2, "are required"},
		{"peers without node", []string{"peers", "--data", "/nonexistent/bitmesh"}, 1, "no running node"},
		{"pub without node", []string{"pub", "--data", "/nonexistent/bitmesh", "t", "m"}, 1, "no running node"},
		{"ban without node", []string{"ban", "--json", "--data", "/nonexistent/bitmesh", "x"}, 1, "no running node"},
		{"bad bootstrap", []string{"node", "--data", "/nonexistent/bitmesh", "--bootstrap", "/ip4/1.2.3.4/tcp/1"}, 2, "/p2p/<peer id>"},
		{"remote metrics without --metrics-allow-remote", []string{"node", "--data", "/nonexistent/bitmesh", "--metrics", "0.0.0.0:9100"}, 2, "--metrics-allow-remote"},
		{"version bad argument", []string{"version", "extra"}, 2, "want 0 argument(s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runArgs(tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			if !strings.Contains(errOut, tc.contains) {
				t.Fatalf("stderr lacks %q\nstdout: %s\nstderr: %s", tc.contains, out, errOut)
			}
			if code != 1 && out != "" {
				t.Fatalf("usage or help text on stdout: %q", out)
			}
		})
	}
}

// TestHelpMatchesFlagHelp: `bitmesh help CMD` is `bitmesh CMD --help`.
func TestHelpMatchesFlagHelp(t *testing.T) {
	for _, c := range commands {
		if c.name == "help" || c.name == "sim" { // sim runs bitmesh-sim
			continue
		}
		_, _, viaHelp := runArgs("help", c.name)
		_, _, viaFlag := runArgs(c.name, "--help")
		if viaHelp != viaFlag || viaHelp == "" {
			t.Errorf("help %s printed %q, %s --help %q", c.name, viaHelp, c.name, viaFlag)
		}
		if regexp.MustCompile(`\n  -[a-z]`).MatchString(viaHelp) {
			t.Errorf("help %s shows a single-dash flag:\n%s", c.name, viaHelp)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, errOut := runArgs(args...)
		if code != 0 || !strings.HasPrefix(out, "bitmesh ") || !strings.Contains(out, runtime.Version()) || !strings.Contains(out, "revision ") {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	for _, args := range [][]string{{"version", "--json"}, {"--version", "--json"}} {
		code, out, errOut := runArgs(args...)
		var v version.Info
		if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.GoVersion != runtime.Version() || v.Version == "" {
			t.Fatalf("%v: exit %d, stdout %q (%v), stderr %q", args, code, out, err, errOut)
		}
	}
}

// TestInterruptedExitCode: a command a signal stopped exits 128+signo.
func TestInterruptedExitCode(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cli.Interrupted{Signal: syscall.SIGINT})
	var errb bytes.Buffer
	if got := exitCode(ctx, "pub", context.Canceled, &errb); got != 130 {
		t.Fatalf("interrupted by SIGINT: exit %d, want 130", got)
	}
	cctx, ccancel := context.WithCancelCause(context.Background())
	ccancel(cli.Interrupted{Signal: syscall.SIGTERM})
	if got := exitCode(cctx, "pub", context.Canceled, &errb); got != 143 {
		t.Fatalf("interrupted by SIGTERM: exit %d, want 143", got)
	}
	if got := exitCode(cctx, "node", nil, &errb); got != 0 {
		t.Fatalf("node stopped by a signal: exit %d, want 0", got)
	}
}

func TestKeygenAndID(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runArgs("keygen", "--data", dir, "--json")
	if code != 0 {
		t.Fatalf("keygen: %d %s", code, errOut)
	}
	var gen idOutput
	if err := json.Unmarshal([]byte(out), &gen); err != nil || !strings.HasPrefix(gen.DeviceID, "bmdev1") {
		t.Fatalf("keygen printed %q (%v)", out, err)
	}
	if code, _, errOut := runArgs("keygen", "--data", dir); code != 1 || !strings.Contains(errOut, "refusing to replace") {
		t.Fatalf("second keygen: exit %d, %s", code, errOut)
	}
	code, out, _ = runArgs("id", "--json", "--data", dir)
	var id idOutput
	if err := json.Unmarshal([]byte(out), &id); code != 0 || err != nil || id != gen {
		t.Fatalf("id printed %q (exit %d, %v), want %+v", out, code, err, gen)
	}
	if err := os.Chmod(filepath.Join(dir, "identity.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runArgs("id", "--data", dir); code != 1 || !strings.Contains(errOut, "chmod 600") {
		t.Fatalf("id on a world-readable key: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runArgs("id", "--data", t.TempDir()); code != 1 || !strings.Contains(errOut, "bitmesh keygen") {
		t.Fatalf("id without a key: exit %d, %s", code, errOut)
	}
}

func TestEncryptedKeyWithPassphraseFile(t *testing.T) {
	dir := t.TempDir()
	pf := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(pf, []byte("correct horse\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runArgs("keygen", "--data", dir, "--passphrase-file", pf); code != 0 {
		t.Fatalf("keygen: %s", errOut)
	}
	if code, _, errOut := runArgs("id", "--data", dir); code != 1 || !strings.Contains(errOut, "passphrase required") {
		t.Fatalf("id without passphrase: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runArgs("id", "--data", dir, "--passphrase-file", pf); code != 0 {
		t.Fatalf("id with passphrase: %s", errOut)
	}
}

func TestCertIssueShowRevoke(t *testing.T) {
	dir := t.TempDir()
	op, dev := filepath.Join(dir, "op"), filepath.Join(dir, "dev")
	for _, d := range []string{op, dev} {
		if code, _, errOut := runArgs("keygen", "--data", d); code != 0 {
			t.Fatalf("keygen: %s", errOut)
		}
	}
	_, out, _ := runArgs("id", "--data", dev, "--json")
	var id idOutput
	if err := json.Unmarshal([]byte(out), &id); err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(dev, "device.cert")
	if code, _, errOut := runArgs("cert", "issue", "--operator-data", op, "--device", id.DeviceID, "--role", "publish", "--out", certFile); code != 0 {
		t.Fatalf("cert issue: %s", errOut)
	}
	if code, _, errOut := runArgs("cert", "issue", "--operator-data", op, "--device", id.DeviceID, "--out", certFile); code != 1 || !strings.Contains(errOut, "refusing to overwrite") {
		t.Fatalf("second cert issue to the same file: exit %d, %s", code, errOut)
	}
	code, out, errOut := runArgs("cert", "show", certFile)
	if code != 0 || !strings.Contains(out, `"device":"`+id.DeviceID+`"`) || !strings.Contains(out, `"roles":["publish"]`) {
		t.Fatalf("cert show: exit %d, %s %s", code, out, errOut)
	}
	revFile := filepath.Join(dir, "dev.rev")
	if code, out, errOut := runArgs("cert", "revoke", "--operator-data", op, "--device", id.DeviceID, "--reason", "lost", "--out", revFile, "--json"); code != 0 ||
		!strings.Contains(out, `"kind":"revocation"`) || !strings.Contains(out, `"device":"`+id.DeviceID+`"`) {
		t.Fatalf("cert revoke --json: exit %d, %s %s", code, out, errOut)
	}
	if code, out, _ := runArgs("cert", "show", revFile); code != 0 || !strings.Contains(out, `"kind":"revocation"`) || !strings.Contains(out, `"reason":"lost"`) {
		t.Fatalf("cert show of a revocation: %s", out)
	}
	for _, args := range [][]string{
		{"cert"},
		{"cert", "frobnicate"},
		{"cert", "issue", "--operator-data", op, "--out", filepath.Join(dir, "x")},
		{"cert", "issue", "--operator-data", op, "--device", "bmdev1nope", "--out", filepath.Join(dir, "y")},
		{"cert", "revoke", "--operator-data", op, "--device", id.DeviceID},
		{"cert", "show", filepath.Join(dev, "identity.key")},
	} {
		if code, _, _ := runArgs(args...); code == 0 {
			t.Errorf("%v succeeded", args)
		}
	}
	// A file larger than any record is refused without reading it all.
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runArgs("cert", "show", big); code != 1 || !strings.Contains(errOut, "larger than any certificate") {
		t.Errorf("cert show of a 1 MiB file: exit %d, %q", code, errOut)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
)

// writeReceipt builds a log of five real envelopes, signs a checkpoint with
// logKey, has witness cosign it, and writes the receipt of entry 3.
func writeReceipt(t *testing.T, dir string, logKey, witness, sender *identity.PrivateKey) string {
	t.Helper()
	l, err := anchor.OpenLog(anchor.NewMemoryStore(), "sensors/temp")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var envs [][]byte
	for i := range 5 {
		e := &gossip.Envelope{Network: gossip.NetworkFromName("bitmesh"), Time: time.Unix(1_800_000_000, 0), Seq: uint64(i), Topic: "sensors/temp", Payload: fmt.Appendf(nil, "%d C", 20+i)}
		raw, _, err := e.Seal(sender)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, raw)
	}
	if _, err := l.Append(envs); err != nil {
		t.Fatal(err)
	}
	root, err := l.Root()
	if err != nil {
		t.Fatal(err)
	}
	const origin = "example.org/plant1/sensors-temp"
	signed, err := anchor.SignCheckpoint(anchor.Checkpoint{Origin: origin, Size: l.Size(), Root: root}, logKey)
	if err != nil {
		t.Fatal(err)
	}
	if signed, err = anchor.Cosign(signed, witness, time.Unix(1_800_000_100, 0)); err != nil {
		t.Fatal(err)
	}
	p, err := l.InclusionProof(3, l.Size())
	if err != nil {
		t.Fatal(err)
	}
	r := anchor.Receipt{Envelope: envs[3], LeafIndex: 3, Checkpoint: signed}
	for _, h := range p {
		r.Proof = append(r.Proof, [32]byte(h))
	}
	b, err := anchor.MarshalReceipt(r)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "receipt.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLogVerify(t *testing.T) {
	dir := t.TempDir()
	logKey, witness, sender, stranger := newTestKey(t), newTestKey(t), newTestKey(t), newTestKey(t)
	path := writeReceipt(t, dir, logKey, witness, sender)
	const origin = "example.org/plant1/sensors-temp"
	args := func(extra ...string) []string {
		return append([]string{"log", "verify", "--log-key", logKey.DeviceID().String(), "--origin", origin}, extra...)
	}

	code, out, errOut := runArgs(args("--witness", witness.DeviceID().String(), "--min-cosigners", "1", "--json", path)...)
	if code != 0 {
		t.Fatalf("valid receipt: exit %d: %s", code, errOut)
	}
	var v verifiedReceipt
	if err := json.Unmarshal([]byte(out), &v); err != nil || !v.Valid || v.From != sender.DeviceID().String() || v.LeafIndex != 3 || v.Topic != "sensors/temp" {
		t.Fatalf("verify printed %q (%v)", out, err)
	}

	tampered := func(name string, edit func([]byte) []byte) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, edit(b), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Exit 3: the receipt was read and is invalid; exit 1: it could not
	// be read at all.
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"another log key", []string{"log", "verify", "--log-key", stranger.DeviceID().String(), "--origin", origin, path}, 3},
		{"another origin", []string{"log", "verify", "--log-key", logKey.DeviceID().String(), "--origin", "example.org/other", path}, 3},
		{"cosigner required but untrusted", args("--witness", stranger.DeviceID().String(), "--min-cosigners", "1", path), 3},
		{"leaf index changed", args(tampered("index.json", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"leaf_index":3`), []byte(`"leaf_index":2`), 1)
		})), 3},
		{"proof hash changed", args(tampered("proof.json", func(b []byte) []byte {
			i := bytes.Index(b, []byte(`"proof":["`)) + len(`"proof":["`)
			c := bytes.Clone(b)
			if c[i] == 'a' {
				c[i] = 'b'
			} else {
				c[i] = 'a'
			}
			return c
		})), 3},
		{"not a receipt", args(tampered("junk.json", func([]byte) []byte { return []byte("{}") })), 3},
		{"missing file", args(filepath.Join(dir, "nope.json")), 1},
		{"a directory, not a file", args(dir), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runArgs(tc.args...)
			if code != tc.code || strings.Contains(out, "valid:") {
				t.Fatalf("exit %d, stdout %q, stderr %q: want exit %d", code, out, errOut, tc.code)
			}
			if invalid := strings.Contains(errOut, "receipt INVALID"); invalid != (tc.code == 3) {
				t.Fatalf("stderr %q: says INVALID %v, exit %d", errOut, invalid, code)
			}
		})
	}
}

func newTestKey(t *testing.T) *identity.PrivateKey {
	t.Helper()
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

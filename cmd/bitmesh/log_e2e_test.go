package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/anchor/meshlog"
	"github.com/bitmesh/bitmesh/anchor/ots"
	"github.com/bitmesh/bitmesh/identity"
)

// TestLogReceiptOffline runs two `bitmesh node --log-topic` processes: node
// A logs its topic, node B witnesses A's checkpoints. A receipt exported
// from A with `bitmesh log receipt` must verify with `bitmesh log verify`
// in a network namespace with no network at all, and every tampered field
// must make it fail clearly.
func TestLogReceiptOffline(t *testing.T) {
	if testing.Short() {
		t.Log("-short: skipping the multi-process test")
		return
	}
	const topic = "e2e/logged"
	// An OpenTimestamps calendar that confirms at once: node A anchors its
	// checkpoints there, so the receipt carries a complete .ots proof.
	cal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := ots.MarshalTimestamp(&ots.Timestamp{
			Attestations: []ots.Attestation{ots.PendingAttestation("http://" + r.Host)},
			Ops: []ots.Branch{{Op: ots.Op{Tag: ots.OpSHA256},
				Stamp: &ots.Timestamp{Attestations: []ots.Attestation{ots.BitcoinAttestation(4242)}}}},
		})
		w.Write(b)
	}))
	defer cal.Close()
	dirA, dirB := t.TempDir(), t.TempDir()
	_, readyA := startNodeProc(t, dirA, "--log-topic", topic, "--checkpoint-interval", "1h", "--anchor-calendar", cal.URL)
	_, readyB := startNodeProc(t, dirB, "--bootstrap", readyA.Addrs[0], "--log-topic", topic)
	bin := buildBitmesh(t)
	run := func(args ...string) (string, error) {
		out, err := exec.Command(bin, args...).Output()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), fmt.Errorf("%v: %s", err, ee.Stderr)
		}
		return string(out), err
	}

	var ids []string
	for i := range 5 {
		out, err := run("pub", "--data", dirA, "--min-peers", "1", topic, fmt.Sprintf("reading %d", i))
		if err != nil {
			t.Fatalf("pub %d: %v", i, err)
		}
		ids = append(ids, strings.TrimSpace(out))
	}
	var logs []meshlog.LogInfo
	waitFor(t, 20*time.Second, "node A to log 5 entries", func() bool {
		out, err := run("log", "show", "--data", dirA, "--json")
		return err == nil && json.Unmarshal([]byte(out), &logs) == nil && len(logs) == 1 && logs[0].Size == 5
	})
	out, err := run("log", "checkpoint", "--data", dirA, "--json", topic)
	var ck checkpointOutput
	if err != nil || json.Unmarshal([]byte(out), &ck) != nil || ck.Topic != topic || ck.Size != 5 || ck.Origin != logs[0].Origin || len(ck.Root) != 64 || !strings.HasPrefix(ck.Note, ck.Origin+"\n5\n") {
		t.Fatalf("log checkpoint --json printed %q (%v)", out, err)
	}
	waitFor(t, 20*time.Second, "node B to cosign A's checkpoint and the calendar to anchor it", func() bool {
		out, err := run("log", "show", "--data", dirA, "--json")
		return err == nil && json.Unmarshal([]byte(out), &logs) == nil && len(logs[0].Cosigners) == 1 && logs[0].Anchored == 5
	})
	receipt := filepath.Join(t.TempDir(), "receipt.json")
	if _, err := run("log", "receipt", "--data", dirA, "--out", receipt, topic, ids[2]); err != nil {
		t.Fatal(err)
	}

	verify := func(path string) (string, error) {
		args := []string{"log", "verify", "--log-key", readyA.DeviceID, "--origin", logs[0].Origin,
			"--witness", readyB.DeviceID, "--min-cosigners", "1", path}
		cmd := exec.Command(bin, args...)
		// A namespace of its own with no interfaces but a down loopback:
		// the check cannot reach anything. Without the privilege to make
		// one (CI not running as root), verification runs as is; it opens
		// no sockets either way.
		if exec.Command("unshare", "-n", "true").Run() == nil {
			cmd = exec.Command("unshare", append([]string{"-n", bin}, args...)...)
		} else {
			t.Log("unshare -n not permitted here: verifying without a separate network namespace")
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return string(out), fmt.Errorf("%v: %s", err, stderr.String())
		}
		return string(out), nil
	}
	out, err = verify(receipt)
	if err != nil {
		t.Fatalf("offline verification failed: %v", err)
	}
	if !strings.Contains(out, "valid: message "+ids[2]) || !strings.Contains(out, "entry 2 of the log") ||
		!strings.Contains(out, "anchor opentimestamps: Bitcoin block at height 4242 must have Merkle root") {
		t.Fatalf("verify printed %q", out)
	}

	orig, err := os.ReadFile(receipt)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(orig, &fields); err != nil {
		t.Fatal(err)
	}
	// Each row rewrites one field of the canonical JSON.
	set := func(field string, value any) []byte {
		b, err := json.Marshal(value)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Replace(orig, append([]byte(`"`+field+`":`), fields[field]...), append([]byte(`"`+field+`":`), b...), 1)
	}
	var envB64, note string
	var proof []string
	json.Unmarshal(fields["envelope"], &envB64)
	json.Unmarshal(fields["checkpoint"], &note)
	json.Unmarshal(fields["proof"], &proof)
	var anchors []struct {
		Digest string `json:"digest"`
	}
	if err := json.Unmarshal(fields["anchors"], &anchors); err != nil || len(anchors) != 1 {
		t.Fatalf("receipt anchors %s: %v", fields["anchors"], err)
	}
	anchorDigest := anchors[0].Digest
	type anchorJSON struct { // in the canonical field order
		Kind   string `json:"kind"`
		Digest string `json:"digest"`
		Proof  string `json:"proof"`
	}
	env, _ := base64.StdEncoding.DecodeString(envB64)
	payloadFlipped := bytes.Clone(env)
	payloadFlipped[len(payloadFlipped)-identity.SignatureSize-1] ^= 1 // last payload byte
	sigFlipped := bytes.Clone(env)
	sigFlipped[len(sigFlipped)-1] ^= 1
	proofFlipped := append([]string(nil), proof...)
	proofFlipped[0] = strings.Repeat("0", 64)
	lines := strings.Split(note, "\n")
	rootChanged := strings.Replace(note, lines[2], base64.StdEncoding.EncodeToString(make([]byte, 32)), 1)
	sizeChanged := strings.Replace(note, "\n5\n", "\n6\n", 1)
	cosigDropped := strings.Join(append(append([]string{}, lines[:len(lines)-2]...), ""), "\n")
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"envelope payload", set("envelope", base64.StdEncoding.EncodeToString(payloadFlipped)), "receipt envelope invalid"},
		{"envelope signature", set("envelope", base64.StdEncoding.EncodeToString(sigFlipped)), "receipt envelope invalid"},
		{"leaf index", set("leaf_index", 3), "inclusion proof invalid"},
		{"proof hash", set("proof", proofFlipped), "inclusion proof invalid"},
		{"proof truncated", set("proof", proof[:len(proof)-1]), "inclusion proof invalid"},
		{"checkpoint root", set("checkpoint", rootChanged), "not signed by the log key"},
		{"checkpoint size", set("checkpoint", sizeChanged), "not signed by the log key"},
		{"witness cosignature removed", set("checkpoint", cosigDropped), "not enough witness cosignatures"},
		{"anchor of another checkpoint", set("anchors", []anchorJSON{{"opentimestamps", strings.Repeat("00", 32), ""}}), "not this checkpoint"},
		{"anchor proof", set("anchors", []anchorJSON{{"opentimestamps", anchorDigest, "AAAA"}}), "invalid anchor proof"},
		{"anchor kind", set("anchors", []anchorJSON{{"carrier-pigeon", anchorDigest, ""}}), "unknown anchor kind"},
		{"not canonical", append(bytes.Clone(orig), ' '), "malformed receipt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if bytes.Equal(tc.b, orig) {
				t.Fatal("the row did not change the receipt")
			}
			path := filepath.Join(t.TempDir(), "tampered.json")
			if err := os.WriteFile(path, tc.b, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := verify(path)
			if err == nil {
				t.Fatalf("tampered receipt verified: %s", out)
			}
			if !strings.Contains(err.Error(), "exit status 3") {
				t.Fatalf("error %q: want exit status 3, an invalid receipt", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

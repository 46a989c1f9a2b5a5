package ots

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/bitmesh/bitmesh/anchor"
)

var updateOTS = flag.Bool("update-ots", false, "rewrite testdata/ots-vector.ots")

// fakeCalendar behaves as an OpenTimestamps calendar: POST /digest answers
// with a pending timestamp of the commitment; GET /timestamp/<msg> answers
// 404 until mined, then the path to a Bitcoin block header attestation.
type fakeCalendar struct {
	srv *httptest.Server

	mu      sync.Mutex
	pending map[string]bool // messages at pending attestations
	mined   bool
}

const fakeHeight = 800000

var fakeTime = []byte{0, 0, 1, 0x94, 0x50, 0x12, 0x34, 0x56} // calendar's prepended time

func newFakeCalendar(t *testing.T) *fakeCalendar {
	c := &fakeCalendar{pending: make(map[string]bool)}
	c.srv = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *fakeCalendar) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/digest":
		d, _ := io.ReadAll(io.LimitReader(r.Body, 100))
		if len(d) != 32 {
			http.Error(w, "digest must be 32 bytes", http.StatusBadRequest)
			return
		}
		msg := sha256.Sum256(append(slices.Clone(fakeTime), d...))
		c.mu.Lock()
		c.pending[hex.EncodeToString(msg[:])] = true
		c.mu.Unlock()
		b, _ := MarshalTimestamp(&Timestamp{Ops: []Branch{{
			Op: Op{Tag: OpPrepend, Arg: fakeTime},
			Stamp: &Timestamp{Ops: []Branch{{
				Op:    Op{Tag: OpSHA256},
				Stamp: &Timestamp{Attestations: []Attestation{PendingAttestation("http://" + r.Host)}},
			}}},
		}}})
		w.Write(b)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/timestamp/"):
		c.mu.Lock()
		known, mined := c.pending[strings.TrimPrefix(r.URL.Path, "/timestamp/")], c.mined
		c.mu.Unlock()
		if !known || !mined {
			http.Error(w, "Pending confirmation in Bitcoin blockchain", http.StatusNotFound)
			return
		}
		// The commitment's path to a block's Merkle root: a sibling, and
		// Bitcoin's double SHA-256.
		b, _ := MarshalTimestamp(&Timestamp{Ops: []Branch{{
			Op: Op{Tag: OpAppend, Arg: bytes.Repeat([]byte{0xab}, 32)},
			Stamp: &Timestamp{Ops: []Branch{{
				Op: Op{Tag: OpSHA256},
				Stamp: &Timestamp{Ops: []Branch{{
					Op:    Op{Tag: OpSHA256},
					Stamp: &Timestamp{Attestations: []Attestation{BitcoinAttestation(fakeHeight)}},
				}}},
			}}},
		}}})
		w.Write(b)
	default:
		http.NotFound(w, r)
	}
}

// inspectWithReference runs the reference implementation on an .ots file.
func inspectWithReference(t *testing.T, path string) []string {
	t.Helper()
	if err := exec.Command("/usr/bin/python3", "-c", "import opentimestamps").Run(); err != nil {
		t.Fatal("the OpenTimestamps reference implementation is missing: install the Debian package " +
			"python3-opentimestamps (apt-get install -y python3-opentimestamps; .ci/run does)")
	}
	out, err := exec.Command("/usr/bin/python3", "testdata/ots_inspect.py", path).CombinedOutput()
	if err != nil {
		t.Fatalf("reference implementation refused %s: %v\n%s", path, err, out)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// ownInspection prints what ots_inspect.py prints, from this package's parse.
func ownInspection(t *testing.T, b []byte) []string {
	t.Helper()
	f, err := ParseFile(b)
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{fmt.Sprintf("roundtrip %v", bytes.Equal(again, b)), "digest " + hex.EncodeToString(f.Digest[:])}
	leaves, err := f.Timestamp.Leaves(f.Digest[:])
	if err != nil {
		t.Fatal(err)
	}
	var btc, pend []string
	for _, l := range leaves {
		switch l.Attestation.Tag {
		case BitcoinTag:
			h, _ := l.Attestation.bitcoinHeight()
			btc = append(btc, fmt.Sprintf("bitcoin %d %x", h, l.Msg))
		case PendingTag:
			u, _ := l.Attestation.pendingURI()
			pend = append(pend, fmt.Sprintf("pending %s %x", u, l.Msg))
		}
	}
	slices.Sort(btc)
	slices.Sort(pend)
	return append(append(lines, btc...), pend...)
}

func TestAnchorWithLocalCalendar(t *testing.T) {
	cal := newFakeCalendar(t)
	cal2 := newFakeCalendar(t)
	a, err := NewAnchorer(Config{Calendars: []string{cal.srv.URL, cal2.srv.URL}, MinResponses: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := anchor.Checkpoint{Origin: "bitmesh/test/topic", Size: 7, Root: [32]byte{7}}
	p, err := a.Anchor(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Pending || p.Digest != anchor.AnchorDigest(c) {
		t.Fatalf("fresh proof pending=%v digest=%x", p.Pending, p.Digest)
	}
	if _, err := anchor.VerifyAnchor(p); !errors.Is(err, anchor.ErrAnchorPending) {
		t.Fatalf("pending proof: %v", err)
	}
	if _, err := a.Upgrade(ctx, p); !errors.Is(err, anchor.ErrAnchorPending) {
		t.Fatalf("upgrade before mining: %v", err)
	}
	dir := t.TempDir()
	check := func(name string, b []byte, wantBitcoin int) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		ref, own := inspectWithReference(t, path), ownInspection(t, b)
		if !slices.Equal(ref, own) {
			t.Fatalf("%s: reference implementation reads\n%s\nthis package reads\n%s", name, strings.Join(ref, "\n"), strings.Join(own, "\n"))
		}
		if ref[0] != "roundtrip true" || ref[1] != "digest "+hex.EncodeToString(p.Digest[:]) {
			t.Fatalf("%s: %v", name, ref[:2])
		}
		n := 0
		for _, l := range ref {
			if strings.HasPrefix(l, "bitcoin ") {
				n++
			}
		}
		if n != wantBitcoin || len(ref) != 2+2+wantBitcoin { // two pending calendars
			t.Fatalf("%s: attestations %v", name, ref[2:])
		}
	}
	check("pending.ots", p.Proof, 0)

	cal.mu.Lock()
	cal.mined = true
	cal.mu.Unlock()
	done, err := a.Upgrade(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	at, err := anchor.VerifyAnchor(done)
	if err != nil {
		t.Fatal(err)
	}
	if at.BlockHeight != fakeHeight || at.Kind != anchor.KindOpenTimestamps {
		t.Fatalf("attestation %+v", at)
	}
	check("upgraded.ots", done.Proof, 1)
	// The attested Merkle root is what the reference computes too.
	for _, l := range inspectWithReference(t, filepath.Join(dir, "upgraded.ots")) {
		if strings.HasPrefix(l, "bitcoin ") && !strings.HasSuffix(l, hex.EncodeToString(at.MerkleRoot[:])) {
			t.Fatalf("reference %q, attestation root %x", l, at.MerkleRoot)
		}
	}
}

// TestVector checks the committed test vector (PROTOCOL.md §18.5): made
// with a fixed nonce and calendar answers, so regenerating it with
// -update-ots reproduces the same bytes.
func TestVector(t *testing.T) {
	c := anchor.Checkpoint{Origin: "example/vector", Size: 1, Root: sha256.Sum256([]byte("leaf"))}
	digest := anchor.AnchorDigest(c)
	nonce := bytes.Repeat([]byte{0x42}, 16)
	commitment := sha256.Sum256(append(digest[:], nonce...))
	f := File{Digest: digest, Timestamp: &Timestamp{Ops: []Branch{{
		Op: Op{Tag: OpAppend, Arg: nonce},
		Stamp: &Timestamp{Ops: []Branch{{
			Op: Op{Tag: OpSHA256},
			Stamp: &Timestamp{
				Attestations: []Attestation{PendingAttestation("https://calendar.example")},
				Ops: []Branch{{Op: Op{Tag: OpSHA256}, Stamp: &Timestamp{
					Attestations: []Attestation{BitcoinAttestation(123456)}}}},
			},
		}}},
	}}}}
	b, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	const path = "testdata/ots-vector.ots"
	if *updateOTS {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("vector changed:\n got %x\nwant %x", b, want)
	}
	root := sha256.Sum256(commitment[:])
	ref := inspectWithReference(t, path)
	wantRef := []string{"roundtrip true", "digest " + hex.EncodeToString(digest[:]),
		fmt.Sprintf("bitcoin 123456 %x", root), fmt.Sprintf("pending https://calendar.example %x", commitment)}
	if !slices.Equal(ref, wantRef) {
		t.Fatalf("reference reads %v, want %v", ref, wantRef)
	}
	at, err := anchor.VerifyAnchor(anchor.AnchorProof{Kind: anchor.KindOpenTimestamps, Digest: digest, Proof: b})
	if err != nil || at.BlockHeight != 123456 || at.MerkleRoot != root {
		t.Fatalf("attestation %+v, %v", at, err)
	}
}

func TestRejects(t *testing.T) {
	good, err := os.ReadFile("testdata/ots-vector.ots")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseFile(good)
	if err != nil {
		t.Fatal(err)
	}
	deep := slices.Clone(good[:len(otsMagic)+2+32])
	for range otsMaxDepth + 1 {
		deep = append(deep, OpSHA256)
	}
	deep = append(deep, 0)
	deep = append(deep, BitcoinTag[:]...)
	deep = append(deep, 1, 0)
	for _, tc := range []struct {
		name   string
		b      []byte
		digest [32]byte
	}{
		{"other digest", good, [32]byte{1}},
		{"bad magic", append([]byte{1}, good[1:]...), f.Digest},
		{"version 2", slices.Concat(otsMagic, []byte{2}, good[len(otsMagic)+1:]), f.Digest},
		{"sha1 file hash", slices.Concat(otsMagic, []byte{1, OpSHA1}, good[len(otsMagic)+2:]), f.Digest},
		{"truncated", good[:len(good)-1], f.Digest},
		{"trailing byte", append(slices.Clone(good), 0), f.Digest},
		{"unknown op", slices.Concat(good[:len(otsMagic)+2+32], []byte{0x55}), f.Digest},
		{"too deep", deep, f.Digest},
		{"empty", nil, f.Digest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := anchor.VerifyAnchor(anchor.AnchorProof{Kind: anchor.KindOpenTimestamps, Digest: tc.digest, Proof: tc.b})
			if !errors.Is(err, anchor.ErrAnchorInvalid) {
				t.Fatalf("err = %v, want ErrAnchorInvalid", err)
			}
		})
	}
}

func FuzzParseFile(f *testing.F) {
	if b, err := os.ReadFile("testdata/ots-vector.ots"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := ParseFile(b)
		if err != nil {
			if !errors.Is(err, anchor.ErrAnchorInvalid) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		again, err := file.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseFile(again); err != nil {
			t.Fatalf("re-encoded file does not parse: %v", err)
		}
		_, _ = file.Timestamp.Leaves(file.Digest[:]) // must not panic
	})
}

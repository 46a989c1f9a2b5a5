package anchor

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
)

// rfcRoot is RFC 6962 MTH over leaf hashes.
func rfcRoot(leaves [][]byte) []byte {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := splitPoint(len(leaves))
	return rfc6962.DefaultHasher.HashChildren(rfcRoot(leaves[:k]), rfcRoot(leaves[k:]))
}

// rfcPath is RFC 6962 PATH(m, D[n]) over leaf hashes.
func rfcPath(m int, leaves [][]byte) [][]byte {
	if len(leaves) <= 1 {
		return nil
	}
	k := splitPoint(len(leaves))
	if m < k {
		return append(rfcPath(m, leaves[:k]), rfcRoot(leaves[k:]))
	}
	return append(rfcPath(m-k, leaves[k:]), rfcRoot(leaves[:k]))
}

// splitPoint is the largest power of two smaller than n.
func splitPoint(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

type receiptFixture struct {
	logKey    *identity.PrivateKey
	witnesses []identity.DeviceID
	receipts  []Receipt
}

func newReceiptFixture(tb testing.TB) receiptFixture {
	tb.Helper()
	const n = 10
	sender := ckptKey(tb, 9)
	var envs, leaves [][]byte
	for i := range n {
		e := gossip.Envelope{
			Network: gossip.NetworkFromName("anchor-test"),
			Time:    ckptNow.Add(time.Duration(i) * time.Second),
			Seq:     uint64(i),
			Topic:   "sensors/temp",
			Payload: []byte(fmt.Sprintf("reading %d", i)),
		}
		raw, _, err := e.Seal(sender)
		if err != nil {
			tb.Fatalf("Seal: %v", err)
		}
		envs = append(envs, raw)
		leaves = append(leaves, rfc6962.DefaultHasher.HashLeaf(raw))
	}
	root := rfcRoot(leaves)
	// Cross-check the in-test tree against the merkle module's compact range.
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	for _, l := range leaves {
		if err := rng.Append(l, nil); err != nil {
			tb.Fatal(err)
		}
	}
	if got, err := rng.GetRootHash(nil); err != nil || !bytes.Equal(got, root) {
		tb.Fatalf("compact root %x (%v), in-test root %x", got, err, root)
	}

	f := receiptFixture{logKey: ckptKey(tb, 1)}
	w1, w2 := ckptKey(tb, 3), ckptKey(tb, 4)
	f.witnesses = []identity.DeviceID{w1.DeviceID(), w2.DeviceID()}
	c := Checkpoint{Origin: ckptOrigin, Size: n, Root: [32]byte(root)}
	signed := mustCosign(tb, mustCosign(tb, mustSign(tb, c, f.logKey), w1), w2)
	for i := range envs {
		r := Receipt{Envelope: envs[i], LeafIndex: uint64(i), Checkpoint: signed}
		for _, h := range rfcPath(i, leaves) {
			r.Proof = append(r.Proof, [32]byte(h))
		}
		f.receipts = append(f.receipts, r)
	}
	return f
}

func (f receiptFixture) verify(r Receipt) (*gossip.Envelope, error) {
	return VerifyReceipt(r, f.logKey.DeviceID(), ckptOrigin, f.witnesses, 2)
}

func cloneReceipt(r Receipt) Receipt {
	return Receipt{
		Envelope:   bytes.Clone(r.Envelope),
		LeafIndex:  r.LeafIndex,
		Proof:      append([][32]byte(nil), r.Proof...),
		Checkpoint: bytes.Clone(r.Checkpoint),
	}
}

func TestVerifyReceiptValid(t *testing.T) {
	f := newReceiptFixture(t)
	for i, r := range f.receipts {
		env, err := f.verify(r)
		if err != nil {
			t.Fatalf("receipt %d: %v", i, err)
		}
		if env.Seq != uint64(i) || string(env.Payload) != fmt.Sprintf("reading %d", i) {
			t.Fatalf("receipt %d: envelope %+v", i, env)
		}
	}
}

func TestVerifyReceiptTampered(t *testing.T) {
	f := newReceiptFixture(t)
	base := f.receipts[5] // proof of 4 hashes in a tree of 10
	replaceLine := func(r *Receipt, i int, with func(string) string) {
		lines := strings.Split(string(r.Checkpoint), "\n")
		lines[i] = with(lines[i])
		r.Checkpoint = []byte(strings.Join(lines, "\n"))
	}
	flipSigChar := func(l string) string { // alter the base64 just before the padding
		b := []byte(l)
		i := len(b) - 1
		for b[i] == '=' {
			i--
		}
		i -= 2
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	type row struct {
		name   string
		mutate func(*Receipt)
		origin string
		min    int
		want   error
	}
	rows := []row{
		{"envelope first byte", func(r *Receipt) { r.Envelope[0] ^= 1 }, "", 0, ErrEnvelopeInvalid},
		{"envelope payload byte", func(r *Receipt) { r.Envelope[len(r.Envelope)-70] ^= 1 }, "", 0, ErrEnvelopeInvalid},
		{"envelope signature byte", func(r *Receipt) { r.Envelope[len(r.Envelope)-1] ^= 1 }, "", 0, ErrEnvelopeInvalid},
		{"envelope truncated", func(r *Receipt) { r.Envelope = r.Envelope[:len(r.Envelope)-1] }, "", 0, ErrEnvelopeInvalid},
		{"other logged envelope", func(r *Receipt) { r.Envelope = bytes.Clone(f.receipts[4].Envelope) }, "", 0, ErrInclusion},
		{"leaf index minus one", func(r *Receipt) { r.LeafIndex-- }, "", 0, ErrInclusion},
		{"leaf index plus one", func(r *Receipt) { r.LeafIndex++ }, "", 0, ErrInclusion},
		{"leaf index beyond size", func(r *Receipt) { r.LeafIndex = 10 }, "", 0, ErrInclusion},
		{"proof hash dropped", func(r *Receipt) { r.Proof = r.Proof[:len(r.Proof)-1] }, "", 0, ErrInclusion},
		{"proof hash added", func(r *Receipt) { r.Proof = append(r.Proof, [32]byte{}) }, "", 0, ErrInclusion},
		{"proof too long", func(r *Receipt) { r.Proof = make([][32]byte, MaxProofLen+1) }, "", 0, ErrReceiptMalformed},
		{"checkpoint root line", func(r *Receipt) { replaceLine(r, 2, flipSigChar) }, "", 0, ErrCheckpointSignature},
		{"checkpoint size line", func(r *Receipt) { replaceLine(r, 1, func(string) string { return "11" }) }, "", 0, ErrCheckpointSignature},
		{"checkpoint origin line", func(r *Receipt) { replaceLine(r, 0, func(string) string { return "evil.example/log" }) }, "", 0, ErrCheckpointSignature},
		{"checkpoint log signature", func(r *Receipt) { replaceLine(r, 4, flipSigChar) }, "", 0, ErrCheckpointSignature},
		{"checkpoint first cosignature", func(r *Receipt) { replaceLine(r, 5, flipSigChar) }, "", 0, ErrCosignature},
		{"checkpoint second cosignature", func(r *Receipt) { replaceLine(r, 6, flipSigChar) }, "", 0, ErrCosignature},
		{"checkpoint cosignature dropped", func(r *Receipt) {
			replaceLine(r, 6, func(string) string { return "" })
			r.Checkpoint = r.Checkpoint[:len(r.Checkpoint)-1]
		}, "", 0, ErrNotEnoughCosignatures},
		{"checkpoint not a note", func(r *Receipt) { r.Checkpoint = []byte("junk") }, "", 0, ErrCheckpointMalformed},
		{"expected origin differs", func(*Receipt) {}, "elsewhere.example/log", 0, ErrOriginMismatch},
		{"three cosigners required", func(*Receipt) {}, "", 3, ErrNotEnoughCosignatures},
	}
	for i := range base.Proof {
		rows = append(rows, row{fmt.Sprintf("proof hash %d", i), func(r *Receipt) { r.Proof[i][7] ^= 0x80 }, "", 0, ErrInclusion})
	}
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			r := cloneReceipt(base)
			tc.mutate(&r)
			origin, min := ckptOrigin, 2
			if tc.origin != "" {
				origin = tc.origin
			}
			if tc.min != 0 {
				min = tc.min
			}
			env, err := VerifyReceipt(r, f.logKey.DeviceID(), origin, f.witnesses, min)
			if !errors.Is(err, tc.want) {
				t.Fatalf("VerifyReceipt = %v, %v; want %v", env, err, tc.want)
			}
		})
	}
}

func TestReceiptJSONRoundTrip(t *testing.T) {
	f := newReceiptFixture(t)
	for i, r := range []Receipt{f.receipts[0], f.receipts[9], {Proof: nil}} {
		b, err := MarshalReceipt(r)
		if err != nil {
			t.Fatalf("receipt %d: MarshalReceipt: %v", i, err)
		}
		got, err := ParseReceipt(b)
		if err != nil {
			t.Fatalf("receipt %d: ParseReceipt(%s): %v", i, b, err)
		}
		if !bytes.Equal(got.Envelope, r.Envelope) || got.LeafIndex != r.LeafIndex || len(got.Proof) != len(r.Proof) || !bytes.Equal(got.Checkpoint, r.Checkpoint) {
			t.Fatalf("receipt %d: round trip %+v, want %+v", i, got, r)
		}
		for j := range r.Proof {
			if got.Proof[j] != r.Proof[j] {
				t.Fatalf("receipt %d: proof hash %d differs", i, j)
			}
		}
	}
	if _, err := f.verify(mustParseReceipt(t, f.receipts[3])); err != nil {
		t.Fatalf("parsed receipt does not verify: %v", err)
	}
}

func mustParseReceipt(tb testing.TB, r Receipt) Receipt {
	tb.Helper()
	b, err := MarshalReceipt(r)
	if err != nil {
		tb.Fatal(err)
	}
	got, err := ParseReceipt(b)
	if err != nil {
		tb.Fatal(err)
	}
	return got
}

func TestParseReceiptRejects(t *testing.T) {
	h := strings.Repeat("ab", 32)
	valid := `{"envelope":"AQID","leaf_index":1,"proof":["` + h + `"],"checkpoint":"x"}` + "\n"
	if _, err := ParseReceipt([]byte(valid)); err != nil {
		t.Fatalf("baseline rejected: %v", err)
	}
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"not json", "receipt"},
		{"no final newline", strings.TrimSuffix(valid, "\n")},
		{"trailing data", valid + "{}"},
		{"second object", valid + valid},
		{"whitespace", strings.Replace(valid, ":", ": ", 1)},
		{"unknown field", strings.Replace(valid, `{"envelope"`, `{"x":1,"envelope"`, 1)},
		{"key case", strings.Replace(valid, `"envelope"`, `"Envelope"`, 1)},
		{"duplicate key", strings.Replace(valid, `{"envelope":"AQID"`, `{"envelope":"AQIE","envelope":"AQID"`, 1)},
		{"field order", `{"leaf_index":1,"envelope":"AQID","proof":["` + h + `"],"checkpoint":"x"}` + "\n"},
		{"missing field", `{"envelope":"AQID","leaf_index":1,"proof":["` + h + `"]}` + "\n"},
		{"null proof", strings.Replace(valid, `["`+h+`"]`, "null", 1)},
		{"uppercase hex", strings.Replace(valid, h, strings.ToUpper(h), 1)},
		{"short hash", strings.Replace(valid, h, h[2:], 1)},
		{"non-hex hash", strings.Replace(valid, h, "zz"+h[2:], 1)},
		{"unpadded base64", strings.Replace(valid, "AQID", "AQI", 1)},
		{"url base64", strings.Replace(valid, "AQID", "-_-_", 1)},
		{"negative index", strings.Replace(valid, ":1,", ":-1,", 1)},
		{"float index", strings.Replace(valid, ":1,", ":1.0,", 1)},
		{"index overflow", strings.Replace(valid, ":1,", ":18446744073709551616,", 1)},
		{"escaped index string", strings.Replace(valid, ":1,", `:"1",`, 1)},
		{"invalid utf8 checkpoint", strings.Replace(valid, `"x"`, "\"\xff\"", 1)},
		{"too many proof hashes", strings.Replace(valid, `"`+h+`"`, strings.TrimSuffix(strings.Repeat(`"`+h+`",`, MaxProofLen+1), ","), 1)},
		{"oversize", valid + strings.Repeat(" ", MaxReceiptSize)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r, err := ParseReceipt([]byte(tc.in)); !errors.Is(err, ErrReceiptMalformed) {
				t.Fatalf("ParseReceipt = %+v, %v; want ErrReceiptMalformed", r, err)
			}
		})
	}
}

// FuzzParseReceipt: never panics; accepts only canonical encodings.
func FuzzParseReceipt(f *testing.F) {
	fx := newReceiptFixture(f)
	for _, r := range fx.receipts[:2] {
		b, err := MarshalReceipt(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"envelope":"","leaf_index":0,"proof":[],"checkpoint":""}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReceipt(b)
		if err != nil {
			if !errors.Is(err, ErrReceiptMalformed) {
				t.Fatalf("error %v does not wrap ErrReceiptMalformed", err)
			}
			return
		}
		again, err := MarshalReceipt(r)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted %q, re-marshals to %q (%v)", b, again, err)
		}
		_, _ = fx.verify(r) // must not panic on any parsed receipt
	})
}

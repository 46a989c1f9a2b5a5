package lightning

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
)

// FuzzDecodeToken: any bytes decode to a token or an error, never a
// panic, and a decoded token re-encodes to a token that decodes the same.
func FuzzDecodeToken(f *testing.F) {
	if b, err := os.ReadFile("testdata/token-vector.json"); err == nil {
		var v tokenVector
		if json.Unmarshal(b, &v) == nil {
			if raw, err := hex.DecodeString(v.Token); err == nil {
				f.Add(raw)
			}
		}
	}
	f.Add([]byte{2, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := DecodeToken(b)
		if err != nil {
			return
		}
		raw, err := tok.Encode()
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeToken(raw)
		if err != nil || again.Grant != tok.Grant || again.ID != tok.ID || again.PaymentHash != tok.PaymentHash {
			t.Fatalf("re-decoded %+v, %v; want %+v", again, err, tok)
		}
	})
}

// FuzzReadFrame: a frame decodes into a Request or an error, never a
// panic, and never reads past its limit.
func FuzzReadFrame(f *testing.F) {
	var buf bytes.Buffer
	_ = writeFrame(&buf, Request{Op: OpUse, Service: "s", Units: 1, Token: []byte{1}, Preimage: make([]byte, 32)}, maxRequestFrame)
	f.Add(buf.Bytes())
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var req Request
		r := bytes.NewReader(b)
		if err := readFrame(r, 1<<10, &req); err == nil && int(r.Size())-r.Len() > 4+1<<10 {
			t.Fatalf("read %d bytes of a 1 KiB frame", int(r.Size())-r.Len())
		}
	})
}

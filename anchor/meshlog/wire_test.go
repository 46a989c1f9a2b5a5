package meshlog

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/bitmesh/bitmesh/anchor"
)

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range []Message{
		{Kind: KindCheckpoint, Note: []byte("note\n")},
		{Kind: KindCosigned, Note: []byte("cosigned\n")},
		{Kind: KindEquivocation, Pair: anchor.Equivocation{A: []byte("a\n"), B: []byte("b\n")}},
	} {
		b, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeMessage(b)
		if err != nil {
			t.Fatal(err)
		}
		again, err := got.Encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("kind %d: re-encoding differs (%v)", m.Kind, err)
		}
	}
}

func TestDecodeMessageRejects(t *testing.T) {
	big := bytes.Repeat([]byte{'x'}, anchor.MaxSignedCheckpointSize+1)
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"kind only", []byte{byte(KindCheckpoint)}},
		{"unknown kind", []byte{9, 'x'}},
		{"oversized note", append([]byte{byte(KindCheckpoint)}, big...)},
		{"evidence truncated length", []byte{byte(KindEquivocation), 0}},
		{"evidence note past end", []byte{byte(KindEquivocation), 0, 5, 'a'}},
		{"evidence empty note", []byte{byte(KindEquivocation), 0, 0, 0, 1, 'b'}},
		{"evidence trailing bytes", []byte{byte(KindEquivocation), 0, 1, 'a', 0, 1, 'b', 'c'}},
		{"evidence missing B", []byte{byte(KindEquivocation), 0, 1, 'a'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeMessage(tc.b); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestConsistencyFramesRoundTrip(t *testing.T) {
	req := Request{Kind: ReqConsistency, Origin: "bitmesh/x/topic", A: 3, B: 1 << 40}
	b, err := req.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadRequest(bytes.NewReader(b))
	if err != nil || got != req {
		t.Fatalf("request round trip: %+v, %v", got, err)
	}
	resp := ConsistencyResponse{Root1: [32]byte{7}, Proof: [][32]byte{{1}, {2}}}
	var buf bytes.Buffer
	if err := writeResponse(&buf, resp, nil); err != nil {
		t.Fatal(err)
	}
	back, err := ReadConsistencyResponse(&buf)
	if err != nil || back.Root1 != resp.Root1 || len(back.Proof) != 2 || back.Proof[1] != resp.Proof[1] {
		t.Fatalf("response round trip: %+v, %v", back, err)
	}
	buf.Reset()
	blobs := [][]byte{[]byte("one"), {}, []byte("three")}
	if err := writeBlobs(&buf, blobs); err != nil {
		t.Fatal(err)
	}
	gotBlobs, err := ReadBlobs(&buf, 3, 5)
	if err != nil || len(gotBlobs) != 3 || string(gotBlobs[2]) != "three" {
		t.Fatalf("blobs round trip: %q, %v", gotBlobs, err)
	}
	buf.Reset()
	_ = writeBlobs(&buf, blobs)
	if _, err := ReadBlobs(&buf, 2, 5); !errors.Is(err, ErrMalformed) {
		t.Fatalf("too many blobs: %v", err)
	}
	buf.Reset()
	_ = writeBlobs(&buf, blobs)
	if _, err := ReadBlobs(&buf, 3, 4); !errors.Is(err, ErrMalformed) {
		t.Fatalf("oversized blob: %v", err)
	}
	buf.Reset()
	if err := writeResponse(&buf, ConsistencyResponse{}, errors.New(strings.Repeat("e", 300))); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadConsistencyResponse(&buf); !errors.Is(err, ErrRemote) {
		t.Fatalf("refusal: %v, want ErrRemote", err)
	}
}

func TestReadFramesReject(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		resp bool
	}{
		{"request empty", nil, false},
		{"request unknown kind", []byte{9, 1, 'o'}, false},
		{"request zero origin", []byte{1, 0}, false},
		{"request truncated sizes", []byte{1, 1, 'o', 0, 0}, false},
		{"response empty", nil, true},
		{"response bad status", []byte{7}, true},
		{"response truncated root", []byte{0, 1, 2}, true},
		{"response too many hashes", append(append([]byte{0}, make([]byte, 32)...), 65), true},
		{"response truncated hash", append(append([]byte{0}, make([]byte, 32)...), 1, 9), true},
		{"response truncated error", []byte{1, 5, 'a'}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.resp {
				_, err = ReadConsistencyResponse(bytes.NewReader(tc.b))
			} else {
				_, err = ReadRequest(bytes.NewReader(tc.b))
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, m := range []Message{
		{Kind: KindCheckpoint, Note: []byte("n\n")},
		{Kind: KindEquivocation, Pair: anchor.Equivocation{A: []byte("a"), B: []byte("b")}},
	} {
		b, _ := m.Encode()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		again, err := m.Encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("decoded message does not re-encode to its input (%v)", err)
		}
	})
}

func FuzzReadConsistencyFrames(f *testing.F) {
	req, _ := Request{Kind: ReqEntries, Origin: "o", A: 1, B: 2}.Encode()
	f.Add(req)
	var buf bytes.Buffer
	_ = writeResponse(&buf, ConsistencyResponse{Proof: [][32]byte{{1}}}, nil)
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := ReadRequest(bytes.NewReader(b)); err == nil {
			if _, err := r.Encode(); err != nil {
				t.Fatalf("decoded request does not encode: %v", err)
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("untyped error %v", err)
		}
		if _, err := ReadConsistencyResponse(bytes.NewReader(b)); err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrRemote) {
			t.Fatalf("untyped error %v", err)
		}
		if _, err := ReadBlobs(bytes.NewReader(b), 4, 64); err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrRemote) {
			t.Fatalf("untyped error %v", err)
		}
	})
}

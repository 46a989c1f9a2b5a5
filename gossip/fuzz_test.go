package gossip

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/bitmesh/bitmesh/identity"
)

// FuzzDecodeEnvelope checks that Decode never panics, that what it accepts
// is canonical (re-encodes to the very input bytes), and that the validator
// accepts nothing Decode rejects.
func FuzzDecodeEnvelope(f *testing.F) {
	key := testKey(f, 1)
	var seeds [][]byte
	for _, mutate := range []func(*Envelope){
		nil,
		func(e *Envelope) { e.Topic, e.Payload = "t", nil },
		func(e *Envelope) { e.Topic = strings.Repeat("~", MaxTopicLen) },
		func(e *Envelope) { e.Payload = bytes.Repeat([]byte{0xab}, 300) },
		func(e *Envelope) { e.Seq, e.PoWNonce, e.PoWTarget = ^uint64(0), ^uint64(0), 255 },
		func(e *Envelope) { e.Network = NetworkFromName("elsewhere") },
	} {
		raw, _ := seal(f, key, mutate)
		seeds = append(seeds, raw)
	}
	for _, raw := range seeds[:2] {
		for n := 0; n < len(raw); n += 7 {
			f.Add(raw[:n])
		}
		f.Add(append(bytes.Clone(raw), 0))
	}
	for _, raw := range seeds {
		f.Add(raw)
		f.Add(flip(raw, len(raw)-1))
	}
	f.Add([]byte{})
	f.Add([]byte{Version})

	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		e, err := Decode(data)
		if !bytes.Equal(in, data) {
			t.Fatal("Decode modified its input")
		}
		id := MessageID(data)
		if err != nil {
			if e != nil {
				t.Fatal("Decode returned an envelope with an error")
			}
			var de *DecodeError
			if !errors.As(err, &de) || errors.Is(err, ErrMalformed) == errors.Is(err, ErrOversize) {
				t.Fatalf("Decode error %v (%T) is not a DecodeError wrapping exactly one of ErrMalformed, ErrOversize", err, err)
			}
		} else {
			enc, err := e.Encode()
			if err != nil {
				t.Fatalf("decoded envelope does not encode: %v", err)
			}
			if !bytes.Equal(enc, data) {
				t.Fatalf("non-canonical encoding accepted:\n in  %x\n out %x", data, enc)
			}
			if eid, err := e.ID(); err != nil || eid != id {
				t.Fatalf("ID() = %s, %v; MessageID = %s", eid, err, id)
			}
			if e.EncodedSize() != len(data) {
				t.Fatalf("EncodedSize %d for %d bytes", e.EncodedSize(), len(data))
			}
		}

		topic := "sensors/temp"
		cfg := DefaultValidatorConfig(testNetwork)
		if e != nil {
			topic = e.Topic
			cfg.Network = e.Network
		}
		cfg.SeenCacheSize = 4
		v, verr := NewValidator(cfg)
		if verr != nil {
			t.Fatal(verr)
		}
		r := v.Validate(testNow, topic, data)
		if (r.Err == nil) != (r.Verdict == Accept) {
			t.Fatalf("verdict %v with error %v", r.Verdict, r.Err)
		}
		if r.Verdict == Accept {
			if err != nil {
				t.Fatalf("validator accepted input Decode rejects: %v", err)
			}
			if identity.VerifyBIP340(e.Sender, id, e.Signature) != nil {
				t.Fatal("validator accepted a bad signature")
			}
		}
		if err != nil && (r.Verdict != Reject || r.Envelope != nil) {
			t.Fatalf("undecodable input: verdict %v, envelope %v", r.Verdict, r.Envelope)
		}
	})
}

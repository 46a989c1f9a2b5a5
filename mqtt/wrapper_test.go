package mqtt

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestWrapperRoundTrip(t *testing.T) {
	at := time.UnixMilli(1_795_000_000_123).UTC()
	for _, d := range []Delivered{
		{Topic: "sensors/t", Payload: []byte("21.5"), Signer: "bmdev1x", Client: "s1", Envelope: "ab", Entry: 3, Time: at},
		{Topic: "sensors/t", Payload: []byte{0xff, 0, 1}, Signer: "bmdev1x", Envelope: "ab", Entry: -1, Time: at},
	} {
		b := EncodeWrapper(d)
		if !LooksWrapped(b) {
			t.Fatalf("%s does not look wrapped", b)
		}
		got, err := DecodeWrapper(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Topic != d.Topic || !bytes.Equal(got.Payload, d.Payload) || got.Signer != d.Signer || got.Client != d.Client ||
			got.Envelope != d.Envelope || got.Entry != d.Entry || !got.Time.Equal(d.Time) {
			t.Fatalf("round trip: %+v, want %+v", got, d)
		}
	}
}

func TestDecodeWrapperRefuses(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"not json", `x`},
		{"unknown field", `{"bitmesh":1,"time":"2026-01-01T00:00:00Z","evil":1}`},
		{"wrong version", `{"bitmesh":2,"time":"2026-01-01T00:00:00Z"}`},
		{"two payloads", `{"bitmesh":1,"payload":"a","payload_base64":"YQ==","time":"2026-01-01T00:00:00Z"}`},
		{"bad time", `{"bitmesh":1,"time":"yesterday"}`},
		{"bad base64", `{"bitmesh":1,"payload_base64":"!!","time":"2026-01-01T00:00:00Z"}`},
		{"negative entry", `{"bitmesh":1,"entry":-1,"time":"2026-01-01T00:00:00Z"}`},
		{"trailing data", `{"bitmesh":1,"time":"2026-01-01T00:00:00Z"} {}`},
		{"too large", `{"bitmesh":1,"payload":"` + string(bytes.Repeat([]byte("a"), MaxWrapperSize)) + `"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeWrapper([]byte(tc.in)); !errors.Is(err, ErrWrapperMalformed) {
				t.Fatalf("got %v, want ErrWrapperMalformed", err)
			}
		})
	}
}

func FuzzDecodeWrapper(f *testing.F) {
	f.Add(EncodeWrapper(Delivered{Topic: "a/b", Payload: []byte("x"), Signer: "s", Envelope: "e", Entry: 0, Time: time.UnixMilli(0)}))
	f.Add([]byte(`{"bitmesh":1,"time":"2026-01-01T00:00:00Z","payload_base64":"AAE="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeWrapper(b)
		if err != nil {
			if !errors.Is(err, ErrWrapperMalformed) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		again, err := DecodeWrapper(EncodeWrapper(d))
		if err != nil || !bytes.Equal(again.Payload, d.Payload) || again.Entry != d.Entry || again.Signer != d.Signer {
			t.Fatalf("re-decoding differs: %+v vs %+v (%v)", again, d, err)
		}
	})
}

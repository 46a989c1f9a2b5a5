package mqtt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// Wrapper is what an MQTT 3.1.1 subscriber receives for a mesh message
// (docs/PROTOCOL.md §20.4): 3.1.1 has no user properties, so the signer
// and the message's place in the mesh travel in a JSON object around the
// payload. MQTT 5 subscribers get the bare payload and the same fields as
// user properties (see the Prop constants).
//
//	{"bitmesh":1,"topic":"sensors/t","payload":"21.5","signer":"<device ID>",
//	 "client":"<MQTT client ID at the source gateway>","envelope":"<hex ID>",
//	 "entry":0,"time":"2026-11-29T11:30:00.123Z"}
//
// payload is the message text when it is UTF-8, else payload_base64
// holds it (standard base64) and payload is absent. client and entry are
// absent for a message that was not a gateway batch entry. A gateway never
// forwards a payload that decodes as a Wrapper back into the mesh: it came
// from there.
type Wrapper struct {
	Bitmesh       int    `json:"bitmesh"`
	Topic         string `json:"topic"`
	Payload       string `json:"payload,omitempty"`
	PayloadBase64 string `json:"payload_base64,omitempty"`
	Signer        string `json:"signer"`
	Client        string `json:"client,omitempty"`
	Envelope      string `json:"envelope"`
	Entry         *int   `json:"entry,omitempty"`
	Time          string `json:"time"`
}

// MaxWrapperSize bounds a wrapper a gateway decodes: a payload of the
// largest envelope in base64 and the fields around it.
const MaxWrapperSize = 3 << 20

// User property names on messages to MQTT 5 subscribers.
const (
	PropSigner   = "bitmesh-signer"
	PropClient   = "bitmesh-client"
	PropEnvelope = "bitmesh-envelope"
	PropEntry    = "bitmesh-entry"
	PropTime     = "bitmesh-time"
)

// Delivered is a mesh message as the gateway hands it to MQTT.
type Delivered struct {
	Topic    string // MQTT topic
	Payload  []byte
	Signer   string // device ID of the envelope's signer
	Client   string // source MQTT client ID; "" if not a batch entry
	Envelope string // hex envelope ID
	Entry    int    // index in the batch; -1 if not a batch entry
	Time     time.Time
}

// EncodeWrapper returns d as a JSON wrapper.
func EncodeWrapper(d Delivered) []byte {
	w := Wrapper{Bitmesh: 1, Topic: d.Topic, Signer: d.Signer, Client: d.Client, Envelope: d.Envelope,
		Time: d.Time.UTC().Format(time.RFC3339Nano)}
	if utf8.Valid(d.Payload) {
		w.Payload = string(d.Payload)
	} else {
		w.PayloadBase64 = base64.StdEncoding.EncodeToString(d.Payload)
	}
	if d.Entry >= 0 {
		e := d.Entry
		w.Entry = &e
	}
	b, _ := json.Marshal(w) // strings and ints only: cannot fail
	return b
}

// LooksWrapped is a cheap test for a payload that may be a wrapper: a
// JSON object holding the "bitmesh" key.
func LooksWrapped(p []byte) bool {
	return len(p) > 0 && p[0] == '{' && bytes.Contains(p, []byte(`"bitmesh"`))
}

// DecodeWrapper parses a wrapper: one JSON object, known fields only,
// bitmesh 1, at most MaxWrapperSize bytes.
func DecodeWrapper(b []byte) (Delivered, error) {
	var d Delivered
	if len(b) > MaxWrapperSize {
		return d, fmt.Errorf("%w: %d bytes exceeds %d", ErrWrapperMalformed, len(b), MaxWrapperSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var w Wrapper
	if err := dec.Decode(&w); err != nil {
		return d, fmt.Errorf("%w: %v", ErrWrapperMalformed, err)
	}
	if dec.More() {
		return d, fmt.Errorf("%w: data after the object", ErrWrapperMalformed)
	}
	if w.Bitmesh != 1 {
		return d, fmt.Errorf("%w: bitmesh %d (want 1)", ErrWrapperMalformed, w.Bitmesh)
	}
	if w.Payload != "" && w.PayloadBase64 != "" {
		return d, fmt.Errorf("%w: both payload and payload_base64", ErrWrapperMalformed)
	}
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err != nil {
		return d, fmt.Errorf("%w: time: %v", ErrWrapperMalformed, err)
	}
	d = Delivered{Topic: w.Topic, Payload: []byte(w.Payload), Signer: w.Signer, Client: w.Client, Envelope: w.Envelope, Entry: -1, Time: t}
	if w.PayloadBase64 != "" {
		if d.Payload, err = base64.StdEncoding.DecodeString(w.PayloadBase64); err != nil {
			return Delivered{}, fmt.Errorf("%w: payload_base64: %v", ErrWrapperMalformed, err)
		}
	}
	if w.Entry != nil {
		if *w.Entry < 0 || *w.Entry >= MaxBatchEntries {
			return Delivered{}, fmt.Errorf("%w: entry %d out of range", ErrWrapperMalformed, *w.Entry)
		}
		d.Entry = *w.Entry
	}
	return d, nil
}

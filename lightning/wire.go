package lightning

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ProtocolID is the payment stream protocol: one request, one response
// per stream, each a frame.
const ProtocolID = "/bitmesh/pay/1.0.0"

// Frame limits. A frame is a 4-byte big-endian length and that many bytes
// of one JSON object.
const (
	// MaxServiceRequest bounds the request bytes a buyer sends a service.
	MaxServiceRequest = 64 << 10
	// maxRequestFrame bounds a request frame: the service request (base64
	// in JSON) plus a token, a preimage and the names.
	maxRequestFrame = MaxServiceRequest*4/3 + 4*MaxTokenSize
	// MaxServiceResponse bounds what a service answers.
	MaxServiceResponse = 256 << 10
	maxResponseFrame   = MaxServiceResponse*4/3 + 16<<10
	// MaxServices bounds the services a node lists and a buyer reads.
	MaxServices = 64
)

// Request operations.
const (
	OpServices  = "services"  // list the services
	OpChallenge = "challenge" // ask for a token and an invoice for Units of Service
	OpUse       = "use"       // present Token and Preimage, use Units of Service with Request
)

// Request is what a buyer sends.
type Request struct {
	Op       string `json:"op"`
	Service  string `json:"service,omitempty"`
	Units    uint64 `json:"units,omitempty"`
	Token    []byte `json:"token,omitempty"`
	Preimage []byte `json:"preimage,omitempty"`
	Request  []byte `json:"request,omitempty"`
}

// ServiceInfo is a service as a seller advertises it.
type ServiceInfo struct {
	Name        string `json:"name"`
	PriceMsat   uint64 `json:"price_msat"` // per unit
	Unit        string `json:"unit"`
	Description string `json:"description"`
	MaxUnits    uint64 `json:"max_units"` // largest bundle one token buys
}

// Response is what a seller answers. Error and Code are set on refusal
// (Code is a stable reason: "wrong-preimage", "expired", …).
type Response struct {
	Services   []ServiceInfo `json:"services,omitempty"`
	Token      []byte        `json:"token,omitempty"`
	Invoice    string        `json:"invoice,omitempty"`
	AmountMsat uint64        `json:"amount_msat,omitempty"`
	Response   []byte        `json:"response,omitempty"`
	Remaining  uint64        `json:"remaining,omitempty"`
	Code       string        `json:"code,omitempty"`
	Error      string        `json:"error,omitempty"`
}

func writeFrame(w io.Writer, v any, limit int) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > limit {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(b), limit)
	}
	_, err = w.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...))
	return err
}

// readFrame reads one frame of at most limit bytes into v: one JSON
// object, no unknown field, nothing after it.
func readFrame(r io.Reader, limit int, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > uint32(limit) {
		return fmt.Errorf("%w: frame of %d bytes, at most %d", ErrTooLarge, n, limit)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return err
	}
	return decodeStrict(body, v)
}

var errMalformedFrame = errors.New("lightning: malformed frame")

func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", errMalformedFrame, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: data after the object", errMalformedFrame)
	}
	return nil
}

package control

import (
	"errors"
	"net/http"
	"time"

	"github.com/bitmesh/bitmesh/node"
)

// StatusError is a request the node answered with a status other than
// 200. It unwraps to node.ErrPublishRate for 429 and node.ErrNoTopicPeers
// for 503, so callers test the reason with errors.Is as they would on the
// node itself.
type StatusError struct {
	Code       int
	Message    string        // the node's error text
	RetryAfter time.Duration // from Retry-After (429); 0 if absent
}

func (e *StatusError) Error() string { return "control: " + e.Message }

func (e *StatusError) Unwrap() error {
	switch e.Code {
	case http.StatusTooManyRequests:
		return node.ErrPublishRate
	case http.StatusServiceUnavailable:
		return node.ErrNoTopicPeers
	}
	return nil
}

// Request body errors. Every one is answered with 400 Bad Request but
// ErrBodyTooLarge, answered with 413.
var (
	// ErrBodyTooLarge: the body is over the endpoint's limit.
	ErrBodyTooLarge = errors.New("control: request body too large")
	// ErrNotObject: the body is empty or its JSON value is not an object.
	ErrNotObject = errors.New("control: request body is not a JSON object")
	// ErrTrailingData: something follows the JSON object.
	ErrTrailingData = errors.New("control: trailing data after the JSON object")
	// ErrDuplicateKey: an object names a key twice. encoding/json would keep
	// the last, so a proxy or logger that reads the first would be fooled.
	ErrDuplicateKey = errors.New("control: duplicate key")
	// ErrUnknownField: a top-level key that is not exactly a field of the
	// request. encoding/json matches keys case-insensitively, so "Topic"
	// would otherwise fill "topic".
	ErrUnknownField = errors.New("control: unknown field")
	// ErrTooDeep: the body nests arrays or objects deeper than maxJSONDepth.
	ErrTooDeep = errors.New("control: JSON nested too deeply")
	// ErrMalformedJSON: the body is not valid JSON, or a value does not fit
	// its field's type.
	ErrMalformedJSON = errors.New("control: malformed JSON")
)

package control

import "errors"

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

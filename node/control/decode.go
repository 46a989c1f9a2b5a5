package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
)

// maxJSONDepth bounds nesting. Requests are flat objects; the bound keeps
// the key walk's stack small whatever the body holds.
const maxJSONDepth = 8

// readRequest decodes r's body, at most limit bytes, into v, a pointer to a
// request struct, with decodeStrict's rules. On failure it answers the
// request itself, naming what (e.g. "publish"), and returns false.
func readRequest(w http.ResponseWriter, r *http.Request, limit int64, what string, v any) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		// An outer bound (an extension's route) may cut the body first.
		err = fmt.Errorf("%w: over %d bytes", ErrBodyTooLarge, tooLarge.Limit)
	case err != nil:
		err = fmt.Errorf("%w: reading body: %v", ErrMalformedJSON, err)
	default:
		err = decodeStrict(b, v)
	}
	if err == nil {
		return true
	}
	status := http.StatusBadRequest
	if errors.Is(err, ErrBodyTooLarge) {
		status = http.StatusRequestEntityTooLarge
	}
	writeError(w, status, fmt.Errorf("bad %s request: %w", what, err))
	return false
}

// decodeStrict decodes data, one JSON object and nothing after it but white
// space, into v, a pointer to a struct. It refuses duplicate keys at any
// depth, top-level keys that are not exactly one of v's JSON field names,
// and unknown fields of nested structs.
func decodeStrict(data []byte, v any) error {
	if err := checkKeys(data, jsonFieldNames(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformedJSON, err)
	}
	return nil
}

// checkKeys walks data's tokens without building values: it checks that data
// is one JSON object followed by nothing, with no key twice in an object,
// top-level keys from fields only, and nesting at most maxJSONDepth deep.
func checkKeys(data []byte, fields map[string]bool) error {
	type level struct {
		keys    map[string]bool // nil for an array
		wantKey bool            // in an object, the next token is a key or '}'
	}
	var stack []level
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			stack[n-1].wantKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	for first := true; first || len(stack) > 0; first = false {
		tok, err := dec.Token()
		if first && (err == io.EOF || (err == nil && tok != json.Delim('{'))) {
			return ErrNotObject
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMalformedJSON, err)
		}
		if top := len(stack) - 1; top >= 0 && stack[top].wantKey && tok != json.Delim('}') {
			key := tok.(string) // Token refuses anything else in key position
			if stack[top].keys[key] {
				return fmt.Errorf("%w %q", ErrDuplicateKey, key)
			}
			if top == 0 && !fields[key] {
				return fmt.Errorf("%w %q", ErrUnknownField, key)
			}
			stack[top].keys[key] = true
			stack[top].wantKey = false
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) == maxJSONDepth {
				return fmt.Errorf("%w: over %d levels", ErrTooDeep, maxJSONDepth)
			}
			l := level{}
			if tok == json.Delim('{') {
				l = level{keys: map[string]bool{}, wantKey: true}
			}
			stack = append(stack, l)
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return ErrTrailingData
	}
	return nil
}

// jsonFieldNames returns the JSON names of the fields of the struct v points
// to, as encoding/json names them (tag name, else the Go name).
func jsonFieldNames(v any) map[string]bool {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	names := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		names[name] = true
	}
	return names
}

package control

import (
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/bitmesh/bitmesh/identity"
)

type strictTestRequest struct {
	Name   string         `json:"name"`
	Count  int            `json:"count,omitempty"`
	Nested map[string]any `json:"nested,omitempty"`
	Plain  int            // no tag: encoding/json calls it "Plain"
	Hidden int            `json:"-"`
}

func TestDecodeStrict(t *testing.T) {
	deep := `{"nested":{"a":` + strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth) + `}}`
	for _, tc := range []struct {
		name    string
		body    string
		want    strictTestRequest
		wantErr error
	}{
		{"object", `{"name":"a","count":2}`, strictTestRequest{Name: "a", Count: 2}, nil},
		{"white space around", " \n{\"name\":\"a\"}\r\n\t ", strictTestRequest{Name: "a"}, nil},
		{"untagged field", `{"Plain":3}`, strictTestRequest{Plain: 3}, nil},
		{"nested object", `{"nested":{"a":[1,{"b":2}],"c":{}}}`, strictTestRequest{Nested: map[string]any{"a": []any{1.0, map[string]any{"b": 2.0}}, "c": map[string]any{}}}, nil},
		{"same key in sibling objects", `{"nested":{"a":{"k":1},"b":{"k":1}}}`, strictTestRequest{Nested: map[string]any{"a": map[string]any{"k": 1.0}, "b": map[string]any{"k": 1.0}}}, nil},
		{"empty object", `{}`, strictTestRequest{}, nil},

		{"trailing garbage", `{"name":"a"} x`, strictTestRequest{}, ErrTrailingData},
		{"trailing object", `{"name":"a"}{"name":"b"}`, strictTestRequest{}, ErrTrailingData},
		{"trailing comma", `{"name":"a"},`, strictTestRequest{}, ErrTrailingData},
		{"duplicate key", `{"name":"a","name":"b"}`, strictTestRequest{}, ErrDuplicateKey},
		{"duplicate nested key", `{"nested":{"k":1,"k":2}}`, strictTestRequest{}, ErrDuplicateKey},
		{"unknown field", `{"name":"a","colour":"red"}`, strictTestRequest{}, ErrUnknownField},
		{"key in another case", `{"Name":"a"}`, strictTestRequest{}, ErrUnknownField},
		{"case variant as a second key", `{"name":"a","NAME":"b"}`, strictTestRequest{}, ErrUnknownField},
		{"ignored field", `{"Hidden":1}`, strictTestRequest{}, ErrUnknownField},
		{"empty", ``, strictTestRequest{}, ErrNotObject},
		{"only white space", "  \n", strictTestRequest{}, ErrNotObject},
		{"null", `null`, strictTestRequest{}, ErrNotObject},
		{"array", `[{"name":"a"}]`, strictTestRequest{}, ErrNotObject},
		{"string", `"name"`, strictTestRequest{}, ErrNotObject},
		{"unterminated", `{"name":"a"`, strictTestRequest{}, ErrMalformedJSON},
		{"missing colon", `{"name" "a"}`, strictTestRequest{}, ErrMalformedJSON},
		{"number as key", `{1:2}`, strictTestRequest{}, ErrMalformedJSON},
		{"wrong type", `{"count":"two"}`, strictTestRequest{}, ErrMalformedJSON},
		{"too deep", deep, strictTestRequest{}, ErrTooDeep},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got strictTestRequest
			err := decodeStrict([]byte(tc.body), &got)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("decodeStrict(%q) = %v, want %v", tc.body, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("decodeStrict(%q) = %v", tc.body, err)
			}
			if got.Name != tc.want.Name || got.Count != tc.want.Count || got.Plain != tc.want.Plain || !reflect.DeepEqual(got.Nested, tc.want.Nested) {
				t.Fatalf("decodeStrict(%q) gave %+v, want %+v", tc.body, got, tc.want)
			}
		})
	}
}

// TestRequestBodies sends raw bodies to every node endpoint that reads one:
// each refuses what decodeStrict refuses, and publish a negative min_peers.
// The log extension's endpoints have the same rows in anchor/meshlog.
func TestRequestBodies(t *testing.T) {
	_, srv, token := startAPI(t)
	key, _ := identity.Generate()
	dev := key.DeviceID().String()

	for _, tc := range []struct {
		name, path, body string
		status           int
		contains         string
	}{
		{"publish", "/v1/publish", `{"topic":"api/strict","data":"x","min_peers":0}`, http.StatusOK, `"id"`},
		{"publish trailing garbage", "/v1/publish", `{"topic":"api/strict","data":"x"}garbage`, http.StatusBadRequest, "trailing data"},
		{"publish second object", "/v1/publish", `{"topic":"api/strict","data":"x"} {"topic":"other"}`, http.StatusBadRequest, "trailing data"},
		{"publish duplicate topic", "/v1/publish", `{"topic":"api/strict","topic":"api/other","data":"x"}`, http.StatusBadRequest, `duplicate key \"topic\"`},
		{"publish unknown field", "/v1/publish", `{"topic":"api/strict","data":"x","ttl":3}`, http.StatusBadRequest, `unknown field \"ttl\"`},
		{"publish key in another case", "/v1/publish", `{"Topic":"api/strict","data":"x"}`, http.StatusBadRequest, `unknown field \"Topic\"`},
		{"publish negative min_peers", "/v1/publish", `{"topic":"api/strict","data":"x","min_peers":-1}`, http.StatusBadRequest, "min_peers -1: want 0 or more"},
		{"publish too large", "/v1/publish", `{"topic":"api/strict","data":"` + strings.Repeat("x", maxRequestBody) + `"}`, http.StatusRequestEntityTooLarge, "too large"},
		{"publish empty body", "/v1/publish", ``, http.StatusBadRequest, "not a JSON object"},
		{"ban", "/v1/ban", `{"subject":"` + dev + `","reason":"test"}`, http.StatusOK, "banned"},
		{"ban duplicate subject", "/v1/ban", `{"subject":"` + dev + `","subject":"nonsense"}`, http.StatusBadRequest, `bad ban request: control: duplicate key \"subject\"`},
		{"ban trailing garbage", "/v1/ban", `{"subject":"` + dev + `"}]`, http.StatusBadRequest, "trailing data"},
		{"ban unknown field", "/v1/ban", `{"Subject":"` + dev + `"}`, http.StatusBadRequest, "unknown field"},
		{"unban duplicate subject", "/v1/unban", `{"subject":"` + dev + `","subject":"` + dev + `"}`, http.StatusBadRequest, `bad unban request: control: duplicate key`},
		{"unban", "/v1/unban", `{"subject":"` + dev + `"}`, http.StatusOK, "unbanned"},
		{"announce duplicate record", "/v1/announce", `{"record_b64":"","record_b64":"AA=="}`, http.StatusBadRequest, "duplicate key"},
		{"announce trailing garbage", "/v1/announce", `{"record_b64":"AA=="}x`, http.StatusBadRequest, "trailing data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.contains) {
				t.Fatalf("status %d, body %s; want %d and %q", resp.StatusCode, b, tc.status, tc.contains)
			}
		})
	}
}

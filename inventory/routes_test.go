package inventory_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitmesh/bitmesh/inventory"
	"github.com/bitmesh/bitmesh/node/control"
)

// TestRoutes drives the object routes through the node's control API:
// its token, its strict JSON, the status each failure maps to.
func TestRoutes(t *testing.T) {
	on := startObjNode(t, "", testConfig())
	token, err := control.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(control.Handler(on.n, token))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	path, want := randomFile(t, 40<<10)
	info, err := on.inv.Share(context.Background(), path, inventory.ShareOptions{Type: "config"})
	if err != nil {
		t.Fatal(err)
	}
	id := info.ID.String()
	unknown := strings.Repeat("cd", 32)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		contains                 string
	}{
		{"list", http.MethodGet, "/v1/objects", "", http.StatusOK, `"id":"` + id + `"`},
		{"info", http.MethodGet, "/v1/objects/" + id, "", http.StatusOK, `"complete":true`},
		{"content", http.MethodGet, "/v1/objects/" + id + "/content", "", http.StatusOK, string(want[:16])},
		{"counters", http.MethodGet, "/v1/objects/counters", "", http.StatusOK, `"bad_chunks":0`},
		{"info of an unknown object", http.MethodGet, "/v1/objects/" + unknown, "", http.StatusNotFound, "not found"},
		{"content of an unknown object", http.MethodGet, "/v1/objects/" + unknown + "/content", "", http.StatusNotFound, "not found"},
		{"malformed ID", http.MethodGet, "/v1/objects/xyz", "", http.StatusBadRequest, "64 hex digits"},
		{"share a relative path", http.MethodPost, "/v1/objects/share", `{"path":"a.bin","type":"config"}`, http.StatusBadRequest, "not absolute"},
		{"share a missing file", http.MethodPost, "/v1/objects/share", `{"path":"` + filepath.Join(t.TempDir(), "none") + `","type":"config"}`, http.StatusBadRequest, "no such file"},
		{"share a bad type", http.MethodPost, "/v1/objects/share", `{"path":"` + path + `","type":"Config!"}`, http.StatusBadRequest, "type"},
		{"share an unknown field", http.MethodPost, "/v1/objects/share", `{"path":"` + path + `","kind":"x"}`, http.StatusBadRequest, "unknown field"},
		{"fetch a malformed ID", http.MethodPost, "/v1/objects/fetch", `{"id":"12"}`, http.StatusBadRequest, "64 hex digits"},
		{"fetch one here", http.MethodPost, "/v1/objects/fetch", `{"id":"` + id + `"}`, http.StatusOK, `"complete":true`},
		{"fetch duplicate key", http.MethodPost, "/v1/objects/fetch", `{"id":"a","id":"b"}`, http.StatusBadRequest, "duplicate key"},
		{"fetch too large", http.MethodPost, "/v1/objects/fetch", `{"id":"` + strings.Repeat("a", 9000) + `"}`, http.StatusRequestEntityTooLarge, "too large"},
		{"without the token", http.MethodGet, "/v1/objects", "", http.StatusUnauthorized, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.status != http.StatusUnauthorized {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.contains) {
				t.Fatalf("status %d, body %.300s; want %d and %q", resp.StatusCode, b, tc.status, tc.contains)
			}
		})
	}
}

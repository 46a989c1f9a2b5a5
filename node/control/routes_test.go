package control

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/bitmesh/bitmesh/node"
	"github.com/bitmesh/bitmesh/node/ext"
)

// plainExt is an extension without routes.
type plainExt struct{ name string }

func (e plainExt) Name() string       { return e.name }
func (plainExt) Start(ext.Host) error { return nil }
func (plainExt) Close() error         { return nil }

// routesExt mounts the routes its mount function gives, under prefix.
type routesExt struct {
	plainExt
	prefix string
	mount  func(r ext.RouteRegistrar)
}

func (e routesExt) RoutePrefix() string              { return e.prefix }
func (e routesExt) MountRoutes(r ext.RouteRegistrar) { e.mount(r) }

// echoExt serves POST /v1/echo (reading at most limit bytes) and GET
// /v1/echo/teapot, an error.
func echoExt(limit int64) routesExt {
	return routesExt{plainExt: plainExt{"echo"}, prefix: "/v1/echo", mount: func(r ext.RouteRegistrar) {
		r.Handle("POST /v1/echo", func(w http.ResponseWriter, req *http.Request) {
			var body struct {
				Say string `json:"say"`
			}
			if r.ReadJSON(w, req, limit, "echo", &body) {
				r.WriteJSON(w, http.StatusOK, map[string]string{"said": body.Say})
			}
		})
		r.Handle("GET /v1/echo/teapot", func(w http.ResponseWriter, _ *http.Request) {
			r.WriteError(w, http.StatusTeapot, errors.New("short and stout"))
		})
	}}
}

func TestExtensionRoutes(t *testing.T) {
	_, srv, token := startAPI(t, node.WithExtension(plainExt{"plain"}), node.WithExtension(echoExt(1<<10)))
	for _, tc := range []struct {
		name, method, path, body string
		auth                     bool
		status                   int
		contains                 string
	}{
		{"echo", http.MethodPost, "/v1/echo", `{"say":"hi"}`, true, http.StatusOK, `{"said":"hi"}`},
		{"error form", http.MethodGet, "/v1/echo/teapot", "", true, http.StatusTeapot, `{"error":"short and stout"}`},
		{"no token", http.MethodPost, "/v1/echo", `{"say":"hi"}`, false, http.StatusUnauthorized, "bearer token"},
		{"strict decoding", http.MethodPost, "/v1/echo", `{"say":"a","say":"b"}`, true, http.StatusBadRequest, `bad echo request: control: duplicate key \"say\"`},
		{"over the handler's limit", http.MethodPost, "/v1/echo", `{"say":"` + strings.Repeat("x", 1<<10) + `"}`, true, http.StatusRequestEntityTooLarge, "over 1024 bytes"},
		{"wrong method", http.MethodGet, "/v1/echo", "", true, http.StatusMethodNotAllowed, ""},
		{"node routes still served", http.MethodGet, "/v1/info", "", true, http.StatusOK, `"device_id"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.auth {
				req.Header.Set("Authorization", "Bearer "+token)
			}
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

	c := NewClient(Endpoint{Addr: strings.TrimPrefix(srv.URL, "http://"), Token: token})
	defer c.Close()
	if _, err := c.Do(context.Background(), http.MethodGet, "/v1/echo/teapot", nil); err == nil || err.Error() != "control: short and stout" {
		t.Fatalf("Do of an erring endpoint: %v", err)
	}
}

// TestExtensionBodyCap: a handler that reads with a limit beyond the API's
// is still cut at maxRequestBody.
func TestExtensionBodyCap(t *testing.T) {
	_, srv, token := startAPI(t, node.WithExtension(echoExt(4*maxRequestBody)))
	body := `{"say":"` + strings.Repeat("x", maxRequestBody) + `"}`
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/echo", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "too large") {
		t.Fatalf("status %d, body %s; want 413", resp.StatusCode, b)
	}
}

// TestMountMisuse: every clash of routes panics when the handler is built,
// naming the extension.
func TestMountMisuse(t *testing.T) {
	handle := func(patterns ...string) func(ext.RouteRegistrar) {
		return func(r ext.RouteRegistrar) {
			for _, p := range patterns {
				r.Handle(p, func(http.ResponseWriter, *http.Request) {})
			}
		}
	}
	ok := func(name, prefix string, patterns ...string) ext.Extension {
		return routesExt{plainExt: plainExt{name}, prefix: prefix, mount: handle(patterns...)}
	}
	for _, tc := range []struct {
		name  string
		exts  []ext.Extension
		panic string // "" for none
	}{
		{"two extensions", []ext.Extension{ok("a", "/v1/a", "GET /v1/a", "POST /v1/a/{x}"), plainExt{"p"}, ok("b", "/v1/b-2", "GET /v1/b-2/")}, ""},
		{"not under /v1", []ext.Extension{ok("a", "/v2/a")}, "extension a: route prefix"},
		{"upper case", []ext.Extension{ok("a", "/v1/A")}, "route prefix"},
		{"two segments", []ext.Extension{ok("a", "/v1/a/b")}, "route prefix"},
		{"trailing slash", []ext.Extension{ok("a", "/v1/a/")}, "route prefix"},
		{"empty", []ext.Extension{ok("a", "")}, "route prefix"},
		{"a node endpoint", []ext.Extension{ok("a", "/v1/publish", "GET /v1/publish/x")}, "taken by the node"},
		{"another extension's", []ext.Extension{ok("a", "/v1/x"), ok("b", "/v1/x")}, "extension b: route prefix /v1/x is taken by extension a"},
		{"outside the prefix", []ext.Extension{ok("a", "/v1/a", "GET /v1/info")}, `route "GET /v1/info"`},
		{"prefix look-alike", []ext.Extension{ok("a", "/v1/a", "GET /v1/ab")}, "route"},
		{"no method", []ext.Extension{ok("a", "/v1/a", "/v1/a")}, "route"},
		{"a host", []ext.Extension{ok("a", "/v1/a", "GET example.com/v1/a")}, "route"},
		{"same pattern twice", []ext.Extension{ok("a", "/v1/a", "GET /v1/a", "GET /v1/a")}, "conflicts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &server{}
			mux := http.NewServeMux()
			for _, r := range s.ownRoutes() {
				mux.HandleFunc(r.pattern, r.handler)
			}
			defer func() {
				got := recover()
				msg, _ := got.(string)
				if err, isErr := got.(error); isErr {
					msg = err.Error()
				}
				if (got != nil) != (tc.panic != "") || !strings.Contains(msg, tc.panic) {
					t.Fatalf("panic %v, want one containing %q", got, tc.panic)
				}
			}()
			mountExtensions(mux, s.ownRoutes(), tc.exts)
		})
	}
}

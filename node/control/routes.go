package control

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/bitmesh/bitmesh/node/ext"
)

// routePrefix is what ext.Routes.RoutePrefix must look like.
var routePrefix = regexp.MustCompile(`^/v1/[a-z0-9][a-z0-9-]*$`)

// mountExtensions mounts the routes of every extension in exts that
// implements ext.Routes on mux, in order. own are the node's endpoints,
// whose paths no extension may claim. Misuse panics, naming the extension.
func mountExtensions(mux *http.ServeMux, own []route, exts []ext.Extension) {
	claimed := map[string]string{} // prefix → who claimed it
	for _, r := range own {
		claimed[patternPath(r.pattern)] = "the node"
	}
	for _, e := range exts {
		er, ok := e.(ext.Routes)
		if !ok {
			continue
		}
		prefix := er.RoutePrefix()
		if !routePrefix.MatchString(prefix) {
			panic(fmt.Sprintf("control: extension %s: route prefix %q is not /v1/ and one segment of [a-z0-9-]", e.Name(), prefix))
		}
		if by, dup := claimed[prefix]; dup {
			panic(fmt.Sprintf("control: extension %s: route prefix %s is taken by %s", e.Name(), prefix, by))
		}
		claimed[prefix] = "extension " + e.Name()
		er.MountRoutes(registrar{mux: mux, name: e.Name(), prefix: prefix})
	}
}

// patternPath returns the path of a ServeMux pattern "[METHOD ]PATH".
func patternPath(pattern string) string {
	if _, path, ok := strings.Cut(pattern, " "); ok {
		return strings.TrimLeft(path, " \t")
	}
	return pattern
}

// registrar is the ext.RouteRegistrar of one extension.
type registrar struct {
	mux    *http.ServeMux
	name   string // the extension's, for panics
	prefix string
}

var _ ext.RouteRegistrar = registrar{}

func (g registrar) Handle(pattern string, h http.HandlerFunc) {
	method, _, hasMethod := strings.Cut(pattern, " ")
	path := patternPath(pattern)
	if !hasMethod || method == "" || (path != g.prefix && !strings.HasPrefix(path, g.prefix+"/")) {
		panic(fmt.Sprintf("control: extension %s: route %q is not \"METHOD %s[/…]\"", g.name, pattern, g.prefix))
	}
	// The API's bound on every body, whatever limit the handler reads with.
	g.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
		h(w, r)
	})
}

func (registrar) ReadJSON(w http.ResponseWriter, r *http.Request, limit int64, what string, v any) bool {
	return readRequest(w, r, limit, what, v)
}

func (registrar) WriteJSON(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v) }

func (registrar) WriteError(w http.ResponseWriter, status int, err error) {
	writeError(w, status, err)
}

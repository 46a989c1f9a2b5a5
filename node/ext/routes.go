package ext

import "net/http"

// Routes is implemented by an extension that serves endpoints on the
// node's local control API (node/control), so that the API grows with
// the extensions instead of importing each of them.
//
// The control API mounts the routes of every started extension that
// implements Routes when its handler is built (after node.Start), behind
// its bearer-token check. A handler mounted this way:
//
//  1. is served only to requests that carried the API's token, which lets
//     them publish, ban and sign as this device: it needs no check of its
//     own and must not hand out the token's power to anyone else;
//  2. is called concurrently, and possibly after the extension's Close
//     (the API may outlive it briefly): it then answers with an error, it
//     does not panic;
//  3. reads a request body only through RouteRegistrar.ReadJSON, with a
//     limit sized to its request (the API also cuts every body at 2 MiB,
//     its largest publish, so a handler that forgets stays bounded);
//  4. returns once r.Context() ends: the API's shutdown waits for its
//     handlers, so one that blocks forever stalls the node's exit.
type Routes interface {
	// RoutePrefix is the path every endpoint of the extension lives
	// under: "/v1/" then one segment of lower-case letters, digits and
	// '-', such as "/v1/logs". It must not be one of the node's own
	// endpoints ("/v1/info", "/v1/publish", …) nor another extension's
	// prefix; the control API panics on such a clash, a programming error.
	RoutePrefix() string
	// MountRoutes registers the extension's handlers on r. It is called
	// once for each control handler built, which may be never (not every
	// program serves the API), and must not keep r.
	MountRoutes(r RouteRegistrar)
}

// RouteRegistrar is what the control API hands an extension to mount its
// endpoints: where to register them, and the API's own request decoding
// and answer forms, so that every endpoint refuses the same malformed
// bodies and answers errors in the one form clients read. Its methods are
// safe for concurrent access.
type RouteRegistrar interface {
	// Handle serves pattern with h. pattern is a net/http.ServeMux pattern
	// with a method, such as "GET /v1/logs/receipt", whose path is the
	// extension's RoutePrefix or below it. A pattern outside the prefix,
	// or one that conflicts with another, panics.
	Handle(pattern string, h http.HandlerFunc)
	// ReadJSON decodes r's body, at most limit bytes, into v, a pointer to
	// a struct. The body must be one JSON object with no key twice, no key
	// that is not exactly one of v's JSON field names, and nothing after
	// it. On failure ReadJSON answers the request itself, 413 for a body
	// over limit and 400 otherwise, naming what ("checkpoint"), and
	// returns false.
	ReadJSON(w http.ResponseWriter, r *http.Request, limit int64, what string, v any) bool
	// WriteJSON answers with status and v encoded as JSON.
	WriteJSON(w http.ResponseWriter, status int, v any)
	// WriteError answers with status and {"error": err's text}, the form
	// the API's clients show their users.
	WriteError(w http.ResponseWriter, status int, err error)
}

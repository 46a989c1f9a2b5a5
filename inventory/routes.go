package inventory

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"strconv"

	"github.com/bitmesh/bitmesh/node/ext"
)

// RoutePrefix is where the extension serves its control API endpoints
// (ext.Routes), which `bitmesh share|fetch|objects` call:
//
//	GET  /v1/objects               []ObjectInfo
//	POST /v1/objects/share         ShareRequest → ObjectInfo: the node reads the file at path
//	POST /v1/objects/fetch         {"id"} → ObjectInfo: the fetch started (or the object is here)
//	GET  /v1/objects/{id}          ObjectInfo: progress of a fetch (chunks 0 until the manifest is here)
//	GET  /v1/objects/{id}/content  the object's bytes (complete objects only; 409 before)
//	GET  /v1/objects/counters      Counters: what the extension refused or dropped, by reason
//
// An unknown object is 404; a malformed request 400; an object over its
// type's quota 507.
const RoutePrefix = "/v1/objects"

var _ ext.Routes = (*Inventory)(nil)

// maxRouteRequest bounds the request bodies: a path and a few names.
const maxRouteRequest = 8 << 10

// ShareRequest asks the node to share the file at Path (absolute, on the
// node's machine).
type ShareRequest struct {
	Path       string `json:"path"`
	Type       string `json:"type"`
	Name       string `json:"name"`
	Supersedes string `json:"supersedes"`
	Certify    string `json:"certify"`
}

// FetchRequest asks the node to fetch an object.
type FetchRequest struct {
	ID string `json:"id"`
}

// RoutePrefix implements ext.Routes.
func (x *Inventory) RoutePrefix() string { return RoutePrefix }

// MountRoutes implements ext.Routes.
func (x *Inventory) MountRoutes(r ext.RouteRegistrar) {
	h := routes{x: x, r: r}
	r.Handle("GET "+RoutePrefix, h.list)
	r.Handle("POST "+RoutePrefix+"/share", h.share)
	r.Handle("POST "+RoutePrefix+"/fetch", h.fetch)
	r.Handle("GET "+RoutePrefix+"/counters", h.counters)
	r.Handle("GET "+RoutePrefix+"/{id}", h.info)
	r.Handle("GET "+RoutePrefix+"/{id}/content", h.content)
}

// routes serves the endpoints; both fields are set at mount, never
// modified.
type routes struct {
	x *Inventory
	r ext.RouteRegistrar
}

func routeStatus(err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrIncomplete):
		return http.StatusConflict
	case errors.Is(err, ErrQuota):
		return http.StatusInsufficientStorage
	case errors.Is(err, ErrMalformed):
		return http.StatusBadRequest
	case errors.Is(err, ErrClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func (h routes) list(w http.ResponseWriter, _ *http.Request) {
	h.r.WriteJSON(w, http.StatusOK, h.x.Objects())
}

func (h routes) counters(w http.ResponseWriter, _ *http.Request) {
	h.r.WriteJSON(w, http.StatusOK, h.x.Counters())
}

func (h routes) share(w http.ResponseWriter, r *http.Request) {
	var req ShareRequest
	if !h.r.ReadJSON(w, r, maxRouteRequest, "share", &req) {
		return
	}
	if !filepath.IsAbs(req.Path) {
		h.r.WriteError(w, http.StatusBadRequest, fmt.Errorf("%w: path %q is not absolute", ErrMalformed, req.Path))
		return
	}
	o := ShareOptions{Type: req.Type, Name: req.Name, Certify: req.Certify}
	if req.Supersedes != "" {
		id, err := ParseID(req.Supersedes)
		if err != nil {
			h.r.WriteError(w, http.StatusBadRequest, err)
			return
		}
		o.Supersedes = id
	}
	info, err := h.x.Share(r.Context(), req.Path, o)
	if err != nil {
		status := routeStatus(err)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			status = http.StatusBadRequest
		}
		h.r.WriteError(w, status, err)
		return
	}
	h.r.WriteJSON(w, http.StatusOK, info)
}

func (h routes) fetch(w http.ResponseWriter, r *http.Request) {
	var req FetchRequest
	if !h.r.ReadJSON(w, r, maxRouteRequest, "fetch", &req) {
		return
	}
	id, err := ParseID(req.ID)
	if err != nil {
		h.r.WriteError(w, http.StatusBadRequest, err)
		return
	}
	if err := h.x.StartFetch(id); err != nil {
		h.r.WriteError(w, routeStatus(err), err)
		return
	}
	info, err := h.x.Info(id)
	if err != nil {
		// The manifest is not here yet: the fetch is looking for it.
		info = ObjectInfo{ID: id}
	}
	h.r.WriteJSON(w, http.StatusOK, info)
}

func (h routes) parseID(w http.ResponseWriter, r *http.Request) (ID, bool) {
	id, err := ParseID(r.PathValue("id"))
	if err != nil {
		h.r.WriteError(w, http.StatusBadRequest, err)
		return ID{}, false
	}
	return id, true
}

func (h routes) info(w http.ResponseWriter, r *http.Request) {
	id, ok := h.parseID(w, r)
	if !ok {
		return
	}
	info, err := h.x.Info(id)
	if err != nil {
		if h.x.fetching(id) {
			h.r.WriteJSON(w, http.StatusOK, ObjectInfo{ID: id})
			return
		}
		h.r.WriteError(w, routeStatus(err), err)
		return
	}
	h.r.WriteJSON(w, http.StatusOK, info)
}

func (h routes) content(w http.ResponseWriter, r *http.Request) {
	id, ok := h.parseID(w, r)
	if !ok {
		return
	}
	c, err := h.x.Content(id)
	if err != nil {
		h.r.WriteError(w, routeStatus(err), err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(c.Size(), 10))
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, c)
}

package meshlog

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/node/ext"
)

// RoutePrefix is where the logs serve their control API endpoints
// (ext.Routes), which `bitmesh log show|checkpoint|receipt|proof` call:
//
//	GET  /v1/logs                            []LogInfo, in Config.Topics order
//	POST /v1/logs/checkpoint                 {"topic"} → {"checkpoint"}: the newest signed note
//	GET  /v1/logs/receipt?topic=T&id=HEX     receipt of an envelope (anchor.MarshalReceipt)
//	GET  /v1/logs/receipt?topic=T&index=N    receipt of the entry at index N
//
// A topic this node does not log, or an entry it does not hold, is 404; a
// checkpoint of an empty log 409; a malformed request 400.
const RoutePrefix = "/v1/logs"

var _ ext.Routes = (*MeshLog)(nil)

// maxCheckpointRequest bounds POST /v1/logs/checkpoint: a topic name and
// the JSON around it.
const maxCheckpointRequest = 1 << 12

// CheckpointRequest asks for a checkpoint of a logged topic.
type CheckpointRequest struct {
	Topic string `json:"topic"`
}

// CheckpointResponse is the newest signed checkpoint note.
type CheckpointResponse struct {
	Checkpoint string `json:"checkpoint"`
}

// RoutePrefix implements ext.Routes.
func (m *MeshLog) RoutePrefix() string { return RoutePrefix }

// MountRoutes implements ext.Routes.
func (m *MeshLog) MountRoutes(r ext.RouteRegistrar) {
	h := routes{m: m, r: r}
	r.Handle("GET "+RoutePrefix, h.list)
	r.Handle("POST "+RoutePrefix+"/checkpoint", h.checkpoint)
	r.Handle("GET "+RoutePrefix+"/receipt", h.receipt)
}

// routes serves the endpoints; both fields are set at mount, never modified.
type routes struct {
	m *MeshLog
	r ext.RouteRegistrar
}

func (h routes) list(w http.ResponseWriter, _ *http.Request) {
	h.r.WriteJSON(w, http.StatusOK, h.m.Logs())
}

func (h routes) checkpoint(w http.ResponseWriter, r *http.Request) {
	var req CheckpointRequest
	if !h.r.ReadJSON(w, r, maxCheckpointRequest, "checkpoint", &req) {
		return
	}
	note, err := h.m.Checkpoint(r.Context(), req.Topic)
	if err != nil && note == nil {
		h.r.WriteError(w, routeStatus(err), err)
		return
	}
	h.r.WriteJSON(w, http.StatusOK, CheckpointResponse{Checkpoint: string(note)})
}

// receipt answers ?topic=T&id=HEX or ?topic=T&index=N with the canonical
// receipt encoding. An entry no checkpoint covers yet gets one signed now,
// so that a caller never has to wait for the next one.
func (h routes) receipt(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	topic := q.Get("topic")
	get := func() (anchor.Receipt, error) {
		if idx := q.Get("index"); idx != "" {
			i, err := strconv.ParseUint(idx, 10, 64)
			if err != nil {
				return anchor.Receipt{}, fmt.Errorf("index: %w", err)
			}
			return h.m.InclusionProof(topic, i)
		}
		id, err := parseRouteID(q.Get("id"))
		if err != nil {
			return anchor.Receipt{}, err
		}
		return h.m.Receipt(topic, id)
	}
	rc, err := get()
	if errors.Is(err, ErrNoCheckpoint) {
		if _, err = h.m.Checkpoint(r.Context(), topic); err == nil {
			rc, err = get()
		}
	}
	if err != nil {
		h.r.WriteError(w, routeStatus(err), err)
		return
	}
	b, err := anchor.MarshalReceipt(rc)
	if err != nil {
		h.r.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func parseRouteID(s string) (gossip.ID, error) {
	var id gossip.ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("id %q is not %d hex bytes", s, len(id))
	}
	copy(id[:], b)
	return id, nil
}

// routeStatus maps an error of the log to the endpoint's status: a topic
// or entry this node does not log is not found; an entry that waits for a
// checkpoint conflicts with the log's state; anything else is the
// request's fault.
func routeStatus(err error) int {
	switch {
	case errors.Is(err, ErrUnknownTopic), errors.Is(err, ErrNotLogged):
		return http.StatusNotFound
	case errors.Is(err, ErrNoCheckpoint):
		return http.StatusConflict
	default:
		return http.StatusBadRequest
	}
}

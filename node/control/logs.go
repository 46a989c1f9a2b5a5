package control

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/anchor/meshlog"
	"github.com/bitmesh/bitmesh/gossip"
)

// Option adds optional parts to the control API.
type Option func(*server)

// WithLogs serves the node's Merkle logs under /v1/logs.
func WithLogs(l *meshlog.MeshLog) Option { return func(s *server) { s.logs = l } }

// CheckpointRequest asks for a checkpoint of a logged topic.
type CheckpointRequest struct {
	Topic string `json:"topic"`
}

// CheckpointResponse is the newest signed checkpoint note.
type CheckpointResponse struct {
	Checkpoint string `json:"checkpoint"`
}

func (s *server) routeLogs(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/logs", s.listLogs)
	mux.HandleFunc("POST /v1/logs/checkpoint", s.checkpoint)
	mux.HandleFunc("GET /v1/logs/receipt", s.receipt)
}

func (s *server) requireLogs(w http.ResponseWriter) bool {
	if s.logs == nil {
		writeError(w, http.StatusNotFound, errors.New("this node keeps no logs (start it with --log-topic)"))
		return false
	}
	return true
}

func (s *server) listLogs(w http.ResponseWriter, _ *http.Request) {
	if s.requireLogs(w) {
		writeJSON(w, http.StatusOK, s.logs.Logs())
	}
}

func (s *server) checkpoint(w http.ResponseWriter, r *http.Request) {
	if !s.requireLogs(w) {
		return
	}
	var req CheckpointRequest
	if !readRequest(w, r, 1<<12, "checkpoint", &req) {
		return
	}
	note, err := s.logs.Checkpoint(r.Context(), req.Topic)
	if err != nil && note == nil {
		writeError(w, logStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, CheckpointResponse{Checkpoint: string(note)})
}

// receipt answers ?topic=T&id=HEX or ?topic=T&index=N with the canonical
// receipt encoding. An entry no checkpoint covers yet gets one signed now.
func (s *server) receipt(w http.ResponseWriter, r *http.Request) {
	if !s.requireLogs(w) {
		return
	}
	q := r.URL.Query()
	topic := q.Get("topic")
	get := func() (anchor.Receipt, error) {
		if idx := q.Get("index"); idx != "" {
			i, err := strconv.ParseUint(idx, 10, 64)
			if err != nil {
				return anchor.Receipt{}, fmt.Errorf("index: %w", err)
			}
			return s.logs.InclusionProof(topic, i)
		}
		id, err := parseID(q.Get("id"))
		if err != nil {
			return anchor.Receipt{}, err
		}
		return s.logs.Receipt(topic, id)
	}
	rc, err := get()
	if errors.Is(err, meshlog.ErrNoCheckpoint) {
		if _, err = s.logs.Checkpoint(r.Context(), topic); err == nil {
			rc, err = get()
		}
	}
	if err != nil {
		writeError(w, logStatus(err), err)
		return
	}
	b, err := anchor.MarshalReceipt(rc)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func parseID(s string) (gossip.ID, error) {
	var id gossip.ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("id %q is not %d hex bytes", s, len(id))
	}
	copy(id[:], b)
	return id, nil
}

func logStatus(err error) int {
	switch {
	case errors.Is(err, meshlog.ErrUnknownTopic), errors.Is(err, meshlog.ErrNotLogged):
		return http.StatusNotFound
	case errors.Is(err, meshlog.ErrNoCheckpoint):
		return http.StatusConflict
	default:
		return http.StatusBadRequest
	}
}

// Logs lists the node's logs.
func (c *Client) Logs(ctx context.Context) ([]meshlog.LogInfo, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/logs", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []meshlog.LogInfo
	return out, json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out)
}

// Checkpoint signs (if the log grew) and returns topic's newest checkpoint.
func (c *Client) Checkpoint(ctx context.Context, topic string) (string, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/logs/checkpoint", CheckpointRequest{Topic: topic})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out CheckpointResponse
	return out.Checkpoint, json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&out)
}

// Receipt returns the canonical receipt of the entry with envelope ID id
// (hex) or, if id is empty, of the entry at index.
func (c *Client) Receipt(ctx context.Context, topic, id string, index uint64) ([]byte, error) {
	q := url.Values{"topic": {topic}}
	if id != "" {
		q.Set("id", id)
	} else {
		q.Set("index", strconv.FormatUint(index, 10))
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/logs/receipt?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, anchor.MaxReceiptSize+1))
}

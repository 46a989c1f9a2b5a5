package control

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/bitmesh/bitmesh/node"
)

// maxRequestBody bounds a publish request: the largest payload, base64'd,
// plus room for the JSON around it. It also cuts every request body of an
// extension's endpoints, whatever limit the extension reads it with.
const maxRequestBody = 2 << 20

// ownRoutes are the node's own endpoints. An extension's prefix
// (ext.Routes) may not be the path of one of them.
func (s *server) ownRoutes() []route {
	return []route{
		{"GET /v1/info", s.info},
		{"POST /v1/publish", s.publish},
		{"GET /v1/subscribe", s.subscribe},
		{"GET /v1/peers", s.peers},
		{"GET /v1/stats", s.stats},
		{"POST /v1/ban", s.ban},
		{"POST /v1/unban", s.unban},
		{"POST /v1/announce", s.announce},
	}
}

type route struct {
	pattern string
	handler http.HandlerFunc
}

// Handler returns the control API for n, demanding token. It serves the
// node's own endpoints and those of every started extension that
// implements ext.Routes, so build it after n.Start. A clash of routes (see
// ext.Routes) panics: it is a programming error.
func Handler(n *node.Node, token string) http.Handler {
	s := &server{n: n, token: []byte("Bearer " + token)}
	mux := http.NewServeMux()
	for _, r := range s.ownRoutes() {
		mux.HandleFunc(r.pattern, r.handler)
	}
	mountExtensions(mux, s.ownRoutes(), n.Extensions())
	return s.auth(mux)
}

type server struct {
	n     *node.Node
	token []byte
}

func (s *server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), s.token) != 1 {
			writeError(w, http.StatusUnauthorized, errors.New("missing or wrong bearer token"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, errorResponse{Error: err.Error()})
}

func (s *server) info(w http.ResponseWriter, _ *http.Request) {
	info := Info{
		DeviceID: s.n.DeviceID().String(),
		PeerID:   s.n.PeerID().String(),
		Network:  s.n.NetworkName(),
		Peers:    len(s.n.Peers()),
	}
	for _, a := range s.n.Addrs() {
		info.Addrs = append(info.Addrs, a.String())
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *server) stats(w http.ResponseWriter, _ *http.Request) {
	v := s.n.ValidatorStats()
	st := Stats{
		Peers:  len(s.n.Peers()),
		Topics: s.n.Topics(),
		Drops:  s.n.Drops(),
		Validator: ValidatorStats{
			Validated:       v.Validated,
			SignatureChecks: v.SignatureChecks,
			CacheHits:       v.CacheHits,
		},
		StreamsRefused: make(map[string]uint64),
	}
	for p, n := range s.n.StreamsRefused() {
		st.StreamsRefused[string(p)] = n
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *server) publish(w http.ResponseWriter, r *http.Request) {
	var req PublishRequest
	if !readRequest(w, r, maxRequestBody, "publish", &req) {
		return
	}
	if req.MinPeers < 0 {
		writeError(w, http.StatusBadRequest, fmt.Errorf("bad publish request: min_peers %d: want 0 or more", req.MinPeers))
		return
	}
	wait := MaxPeerWait
	if req.PeerWaitMs != nil {
		if *req.PeerWaitMs < 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("bad publish request: peer_wait_ms %d: want 0 or more", *req.PeerWaitMs))
			return
		}
		wait = min(wait, time.Duration(*req.PeerWaitMs)*time.Millisecond)
	}
	payload := []byte(req.Data)
	if req.DataB64 != "" {
		var err error
		if payload, err = base64.StdEncoding.DecodeString(req.DataB64); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("bad data_b64: %w", err))
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	id, err := s.n.Publish(ctx, req.Topic, payload, node.WithMinPeers(req.MinPeers))
	if err != nil {
		writePublishError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, PublishResponse{ID: id.String()})
}

// MaxPeerWait bounds how long a publish with min_peers waits for the
// topic's subscribers before answering 503.
const MaxPeerWait = 10 * time.Second

// writePublishError answers a refused publish: 429 with Retry-After when
// the device is at its rate, 503 when the topic has too few peers or
// every peer's outbound queue stayed full (with Retry-After), 504 when the
// client went away, 400 for what the node refused outright.
func writePublishError(w http.ResponseWriter, err error) {
	var limited *node.RateLimitError
	status := http.StatusBadRequest
	switch {
	case errors.As(err, &limited):
		// Whole seconds (RFC 9110), rounded up so a client that waits
		// this long gets its token.
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(limited.RetryAfter.Seconds()))))
		status = http.StatusTooManyRequests
	case errors.Is(err, node.ErrNoTopicPeers):
		status = http.StatusServiceUnavailable
	case errors.Is(err, node.ErrCongested):
		w.Header().Set("Retry-After", "1")
		status = http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		status = http.StatusGatewayTimeout
	}
	writeError(w, status, err)
}

// subscribe streams messages as NDJSON until the client goes away. The
// status line is flushed as soon as the subscription exists, so a client
// knows from the response headers that nothing published after it is missed.
func (s *server) subscribe(w http.ResponseWriter, r *http.Request) {
	sub, err := s.n.Subscribe(r.URL.Query().Get("topic"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	defer sub.Cancel()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	for {
		m, err := sub.Next(r.Context())
		if err != nil {
			return
		}
		if err := enc.Encode(NewMessage(m)); err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
}

// AnnounceRequest is the body of POST /v1/announce: an encoded certificate
// or revocation to gossip to a permissioned mesh.
type AnnounceRequest struct {
	RecordB64 string `json:"record_b64"`
}

func (s *server) announce(w http.ResponseWriter, r *http.Request) {
	var req AnnounceRequest
	if !readRequest(w, r, 1<<16, "announce", &req) {
		return
	}
	rec, err := base64.StdEncoding.DecodeString(req.RecordB64)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("bad record_b64: %w", err))
		return
	}
	if err := s.n.Announce(r.Context(), rec); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"announced": true})
}

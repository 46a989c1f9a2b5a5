package mqtt

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/anchor/meshlog"
	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/node/ext"
)

// RoutePrefix is where the gateway serves its control API endpoints
// (ext.Routes):
//
//	GET /v1/mqtt                                   Status: the counters, by name
//	GET /v1/mqtt/entry?topic=T&id=HEX&entry=N      EntryProof of one message of a batch
//
// A topic the node does not log, or an envelope not in its log, is 404; one
// no checkpoint covers yet 409; a malformed request 400.
const RoutePrefix = "/v1/mqtt"

var _ ext.Routes = (*Gateway)(nil)

// Status is GET /v1/mqtt's answer.
type Status struct {
	Broker string            `json:"broker,omitempty"` // the embedded broker's address
	Bridge string            `json:"bridge,omitempty"`
	Counts map[string]uint64 `json:"counts"`
}

// EntryProof proves one MQTT message: Receipt (anchor.MarshalReceipt's
// JSON, which `bitmesh log verify` checks) proves its batch envelope is in
// the gateway's log; Leaf is the entry's encoding and Path its RFC 6962
// audit path to the batch root in the envelope's payload (PROTOCOL.md
// §20.3), so the message can be shown without the rest of the batch's
// payloads once the envelope is trusted.
type EntryProof struct {
	Receipt json.RawMessage `json:"receipt"`
	Entry   int             `json:"entry"`
	Entries int             `json:"entries"`
	Leaf    string          `json:"leaf"` // hex
	Path    []string        `json:"path"` // hex, leaf to root
	Root    string          `json:"root"` // hex
}

// RoutePrefix implements ext.Routes.
func (g *Gateway) RoutePrefix() string { return RoutePrefix }

// MountRoutes implements ext.Routes.
func (g *Gateway) MountRoutes(r ext.RouteRegistrar) {
	r.Handle("GET "+RoutePrefix, func(w http.ResponseWriter, _ *http.Request) {
		r.WriteJSON(w, http.StatusOK, Status{Broker: g.Addr(), Bridge: g.cfg.Bridge, Counts: g.Stats()})
	})
	r.Handle("GET "+RoutePrefix+"/entry", func(w http.ResponseWriter, req *http.Request) {
		p, err := g.EntryProof(req.URL.Query().Get("topic"), req.URL.Query().Get("id"), req.URL.Query().Get("entry"))
		if err != nil {
			r.WriteError(w, routeStatus(err), err)
			return
		}
		r.WriteJSON(w, http.StatusOK, p)
	})
}

// EntryProof returns the proof of entry (decimal) of the batch envelope
// id (hex) on topic.
func (g *Gateway) EntryProof(topic, id, entry string) (EntryProof, error) {
	if g.receipts == nil {
		return EntryProof{}, fmt.Errorf("%w: the gateway has no logs", meshlog.ErrUnknownTopic)
	}
	var eid gossip.ID
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != len(eid) {
		return EntryProof{}, fmt.Errorf("%w: id %q is not %d hex bytes", ErrConfig, id, len(eid))
	}
	copy(eid[:], b)
	i, err := strconv.Atoi(entry)
	if err != nil {
		return EntryProof{}, fmt.Errorf("%w: entry %q: %v", ErrConfig, entry, err)
	}
	rc, err := g.receipts.Receipt(topic, eid)
	if err != nil {
		return EntryProof{}, err
	}
	env, err := gossip.Decode(rc.Envelope)
	if err != nil {
		return EntryProof{}, err
	}
	batch, err := DecodeBatch(env.Payload)
	if err != nil {
		return EntryProof{}, err
	}
	path, err := batch.EntryProof(i)
	if err != nil {
		return EntryProof{}, err
	}
	rj, err := anchor.MarshalReceipt(rc)
	if err != nil {
		return EntryProof{}, err
	}
	p := EntryProof{Receipt: rj, Entry: i, Entries: len(batch.Entries), Leaf: hex.EncodeToString(batch.Leaf(i)), Root: hex.EncodeToString(batch.Root[:])}
	for _, h := range path {
		p.Path = append(p.Path, hex.EncodeToString(h))
	}
	return p, nil
}

func routeStatus(err error) int {
	switch {
	case errors.Is(err, meshlog.ErrUnknownTopic), errors.Is(err, meshlog.ErrNotLogged):
		return http.StatusNotFound
	case errors.Is(err, meshlog.ErrNoCheckpoint):
		return http.StatusConflict
	default:
		return http.StatusBadRequest
	}
}

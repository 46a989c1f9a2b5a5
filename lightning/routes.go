package lightning

import (
	"errors"
	"net/http"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bitmesh/bitmesh/node/ext"
)

// RoutePrefix is where the extension serves its control API endpoints
// (ext.Routes), which `bitmesh pay services|buy|status` call:
//
//	GET  /v1/pay/services?peer=ID   []ServiceInfo the peer sells
//	POST /v1/pay/buy                BuyRequest → BuyResponse: buys a bundle, uses Use units of it
//	GET  /v1/pay/status             Status: sales, credentials held, refusals
//
// A seller's refusal is 402 with its reason; a malformed request 400; a
// peer that cannot be reached 502.
const RoutePrefix = "/v1/pay"

var _ ext.Routes = (*Lightning)(nil)

// BuyRequest buys Units of Service from Peer and spends Use of them (1
// if 0) on Request.
type BuyRequest struct {
	Peer    string `json:"peer"`
	Service string `json:"service"`
	Units   uint64 `json:"units"`
	Use     uint64 `json:"use,omitempty"`
	Request []byte `json:"request,omitempty"`
}

// BuyResponse is the service's answer and what the bundle cost.
type BuyResponse struct {
	Response   []byte `json:"response"`
	Remaining  uint64 `json:"remaining"`
	AmountMsat uint64 `json:"amount_msat"`
}

// maxBuyRequest bounds POST /v1/pay/buy: a service request and names.
const maxBuyRequest = MaxServiceRequest*4/3 + 4096

func (l *Lightning) RoutePrefix() string { return RoutePrefix }

func (l *Lightning) MountRoutes(r ext.RouteRegistrar) {
	r.Handle("GET "+RoutePrefix+"/services", func(w http.ResponseWriter, req *http.Request) {
		p, err := peer.Decode(req.URL.Query().Get("peer"))
		if err != nil {
			r.WriteError(w, http.StatusBadRequest, err)
			return
		}
		svcs, err := l.Services(req.Context(), p)
		if err != nil {
			r.WriteError(w, routeStatus(err), err)
			return
		}
		r.WriteJSON(w, http.StatusOK, svcs)
	})
	r.Handle("POST "+RoutePrefix+"/buy", func(w http.ResponseWriter, req *http.Request) {
		var b BuyRequest
		if !r.ReadJSON(w, req, maxBuyRequest, "buy", &b) {
			return
		}
		p, err := peer.Decode(b.Peer)
		if err != nil || b.Units == 0 {
			r.WriteError(w, http.StatusBadRequest, errors.Join(err, errors.New("lightning: want a peer ID and units ≥ 1")))
			return
		}
		cred, err := l.Buy(req.Context(), p, b.Service, b.Units)
		if err != nil {
			r.WriteError(w, routeStatus(err), err)
			return
		}
		out, err := l.Use(req.Context(), cred, max(b.Use, 1), b.Request)
		if err != nil {
			r.WriteError(w, routeStatus(err), err)
			return
		}
		r.WriteJSON(w, http.StatusOK, BuyResponse{Response: out, Remaining: cred.Remaining, AmountMsat: cred.AmountMsat})
	})
	r.Handle("GET "+RoutePrefix+"/status", func(w http.ResponseWriter, _ *http.Request) {
		r.WriteJSON(w, http.StatusOK, l.Status())
	})
}

func routeStatus(err error) int {
	var refused *RefusedError
	switch {
	case errors.As(err, &refused), errors.Is(err, ErrInvoiceMismatch), errors.Is(err, ErrPaymentFailed):
		return http.StatusPaymentRequired
	case errors.Is(err, ErrUnknownService), errors.Is(err, ErrTooLarge):
		return http.StatusBadRequest
	case errors.Is(err, ErrClosed):
		return http.StatusServiceUnavailable
	default:
		return http.StatusBadGateway
	}
}

package lightning

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/time/rate"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/node/ext"
)

// MeterFileName is the bbolt file, in the node's data directory, that
// holds the units used of each token sold.
const MeterFileName = "lightning.db"

// Config configures the extension.
type Config struct {
	// Services are sold to any peer; none makes the node a buyer only.
	Services []Service
	// Certify, if set, also sells CertifyServiceName (see CertifyConfig).
	Certify *CertifyConfig
	// Backend creates invoices (selling) and pays them (buying).
	Backend Backend
	// TokenTTL is how long a token and its invoice stay valid. A longer
	// TTL lets a prepaid bundle last; a shorter one bounds how long the
	// seller's Lightning node keeps unpaid invoices.
	TokenTTL time.Duration
	// SalesTopic, if set, is the topic each sale is published on (a Sale
	// as JSON, signed by the seller): log it with anchor/meshlog
	// (--log-topic) and every sale gets a receipt that verifies offline.
	SalesTopic string
	// MaxPriceMsat is the most a buyer pays for one bundle; an invoice
	// above it, or not for the price the seller advertised, is refused.
	MaxPriceMsat uint64
	// MaxFeeMsat is the most a buyer pays in routing fees per payment.
	MaxFeeMsat uint64
	// ChallengeRate and ChallengeBurst bound the challenges one peer may
	// ask for: each makes the seller's Lightning node create an invoice.
	ChallengeRate  rate.Limit
	ChallengeBurst int
	// ChallengeRateTotal and ChallengeBurstTotal bound the challenges of
	// all peers together, so that many peer IDs do not multiply the
	// invoices the seller's Lightning node creates.
	ChallengeRateTotal  rate.Limit
	ChallengeBurstTotal int
}

// DefaultConfig is a buyer-and-seller configuration without services or
// backend.
func DefaultConfig() Config {
	return Config{TokenTTL: 24 * time.Hour, MaxPriceMsat: 1_000_000, MaxFeeMsat: 10_000, ChallengeRate: 1, ChallengeBurst: 5,
		ChallengeRateTotal: 20, ChallengeBurstTotal: 100}
}

// streamLimits bound the payment streams a node serves. A challenge waits
// on the Lightning node (AddInvoice), a use on the service.
var streamLimits = ext.StreamLimits{PerPeer: 4, Total: 64, Timeout: 30 * time.Second}

// maxChallengers bounds the per-peer challenge limiters kept.
const maxChallengers = 4096

// Credential is a token a buyer paid for, and what is left of it.
type Credential struct {
	Seller     peer.ID  `json:"seller"`
	Service    string   `json:"service"`
	Units      uint64   `json:"units"`
	Remaining  uint64   `json:"remaining"`
	AmountMsat uint64   `json:"amount_msat"`
	Token      []byte   `json:"token"`
	Preimage   [32]byte `json:"-"`
}

// Lightning is the payment extension: it sells Config.Services over
// ProtocolID and buys from other nodes.
type Lightning struct {
	cfg Config

	mu        sync.Mutex
	h         ext.Host
	seller    *seller
	meter     *meter
	limiters  map[peer.ID]*rate.Limiter
	total     *rate.Limiter // all peers' challenges
	sales     []Sale        // the most recent, at most maxSalesKept
	held      []*Credential
	closed    bool
	spentMsat uint64
}

const maxSalesKept = 1024

// New checks cfg and returns the extension, to pass to node.WithExtension.
func New(cfg Config) (*Lightning, error) {
	if cfg.Backend == nil {
		return nil, errors.New("lightning: Config.Backend is required")
	}
	if cfg.TokenTTL <= 0 || cfg.ChallengeRate <= 0 || cfg.ChallengeBurst <= 0 || cfg.ChallengeRateTotal <= 0 || cfg.ChallengeBurstTotal <= 0 {
		return nil, errors.New("lightning: TokenTTL and the challenge rates and bursts must be positive")
	}
	names := map[string]bool{}
	for _, s := range cfg.Services {
		if s.Name == "" || names[s.Name] || s.PriceMsat == 0 || s.Serve == nil {
			return nil, fmt.Errorf("lightning: service %q: needs a unique name, a price and Serve", s.Name)
		}
		names[s.Name] = true
	}
	l := &Lightning{cfg: cfg, limiters: map[peer.ID]*rate.Limiter{}, total: rate.NewLimiter(cfg.ChallengeRateTotal, cfg.ChallengeBurstTotal)}
	if c := cfg.Certify; c != nil {
		if c.PriceMsat == 0 || c.Receipt == nil || names[CertifyServiceName] {
			return nil, errors.New("lightning: Certify needs a price and Receipt, and no other service named " + CertifyServiceName)
		}
		l.cfg.Services = append(slices.Clone(cfg.Services), l.certifyService(*c))
	}
	if len(l.cfg.Services) > MaxServices {
		return nil, fmt.Errorf("lightning: %d services, at most %d", len(l.cfg.Services), MaxServices)
	}
	return l, nil
}

func (l *Lightning) Name() string { return "lightning" }

// Streams declares ProtocolID with its bounds (ext.Streams).
func (l *Lightning) Streams() map[protocol.ID]ext.StreamLimits {
	return map[protocol.ID]ext.StreamLimits{ProtocolID: streamLimits}
}

func (l *Lightning) Start(h ext.Host) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.h != nil || l.closed {
		return errors.New("lightning: started twice")
	}
	path := ""
	if dir := h.DataDir(); dir != "" {
		path = filepath.Join(dir, MeterFileName)
	}
	mt, err := openMeter(path)
	if err != nil {
		return err
	}
	if err := h.HandleStream(ProtocolID, streamLimits, l.handleStream); err != nil {
		mt.close()
		return err
	}
	l.h, l.meter = h, mt
	l.seller = newSeller(newMinter(h.Key()), l.cfg.Services, l.cfg.Backend, mt, l.cfg.TokenTTL)
	return nil
}

func (l *Lightning) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.meter != nil {
		return l.meter.close()
	}
	return nil
}

func (l *Lightning) running() (ext.Host, *seller, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.h == nil || l.closed {
		return nil, nil, ErrClosed
	}
	return l.h, l.seller, nil
}

// allowChallenge spends a token of p's challenge limiter, then of the
// total one. over says that p itself is over its own limit: only then is
// it to blame.
func (l *Lightning) allowChallenge(p peer.ID) (ok, over bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.limiters[p]
	if !ok {
		if len(l.limiters) >= maxChallengers {
			clear(l.limiters) // forget them all rather than grow: each refills to a burst
		}
		lim = rate.NewLimiter(l.cfg.ChallengeRate, l.cfg.ChallengeBurst)
		l.limiters[p] = lim
	}
	if !lim.Allow() {
		return false, true
	}
	return l.total.Allow(), false
}

func (l *Lightning) handleStream(s network.Stream) {
	defer s.Close()
	h, sel, err := l.running()
	if err != nil {
		_ = s.Reset()
		return
	}
	from := s.Conn().RemotePeer()
	var req Request
	if err := readFrame(bufio.NewReader(s), maxRequestFrame, &req); err != nil {
		sel.refused(err)
		if errors.Is(err, errMalformedFrame) || errors.Is(err, ErrTooLarge) {
			h.Penalise(antispam.PeerSubject(from), antispam.Malformed)
		}
		_ = s.Reset()
		return
	}
	resp := l.serve(h, sel, from, req)
	w := bufio.NewWriter(s)
	if err := writeFrame(w, resp, maxResponseFrame); err == nil {
		_ = w.Flush()
	}
}

func refusal(err error) Response { return Response{Code: refusalCode(err), Error: err.Error()} }

func (l *Lightning) serve(h ext.Host, sel *seller, from peer.ID, req Request) Response {
	buyer, err := identity.DeviceIDFromPeerID(from)
	if err != nil {
		return refusal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), streamLimits.Timeout)
	defer cancel()
	switch req.Op {
	case OpServices:
		out := make([]ServiceInfo, 0, len(l.cfg.Services))
		for _, s := range l.cfg.Services {
			out = append(out, s.info())
		}
		return Response{Services: out}
	case OpChallenge:
		if ok, over := l.allowChallenge(from); !ok {
			if over {
				h.Penalise(antispam.PeerSubject(from), antispam.RateExceeded)
			}
			return Response{Code: "rate-limited", Error: "lightning: too many challenges; slow down"}
		}
		tok, inv, err := sel.challenge(ctx, h.Now(), buyer, req.Service, req.Units)
		if err != nil {
			sel.refused(err)
			return refusal(err)
		}
		raw, err := tok.Encode()
		if err != nil {
			return refusal(err)
		}
		return Response{Token: raw, Invoice: inv.PaymentRequest, AmountMsat: inv.AmountMsat}
	case OpUse:
		out, left, sale, err := sel.redeem(ctx, h.Now(), buyer, req.Service, req.Units, req.Token, req.Preimage, req.Request)
		if sale != nil {
			l.recordSale(ctx, h, *sale)
		}
		if err != nil {
			sel.refused(err)
			return refusal(err)
		}
		return Response{Response: out, Remaining: left}
	default:
		sel.refused(errMalformedFrame)
		h.Penalise(antispam.PeerSubject(from), antispam.Malformed)
		return refusal(fmt.Errorf("%w: op %q", errMalformedFrame, req.Op))
	}
}

// recordSale keeps sale and publishes it on SalesTopic. A sale that cannot
// be published is logged: the buyer paid, so it is served anyway.
func (l *Lightning) recordSale(ctx context.Context, h ext.Host, sale Sale) {
	l.mu.Lock()
	if len(l.sales) == maxSalesKept {
		l.sales = slices.Delete(l.sales, 0, 1)
	}
	l.sales = append(l.sales, sale)
	l.mu.Unlock()
	if l.cfg.SalesTopic == "" {
		return
	}
	b, err := json.Marshal(sale)
	if err == nil {
		_, err = h.Publish(ctx, l.cfg.SalesTopic, b)
	}
	if err != nil {
		h.Logger().Warn("sale not published", "topic", l.cfg.SalesTopic, "payment_hash", sale.PaymentHash, "err", err)
	}
}

// Status is what the node sold and holds.
type Status struct {
	Sales       []Sale            `json:"sales"`
	Credentials []Credential      `json:"credentials"`
	SpentMsat   uint64            `json:"spent_msat"`
	Refusals    map[string]uint64 `json:"refusals"`
}

// Status reports the recent sales, the credentials held and the
// refusals counted by reason.
func (l *Lightning) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := Status{Sales: slices.Clone(l.sales), SpentMsat: l.spentMsat, Refusals: map[string]uint64{}}
	for _, c := range l.held {
		st.Credentials = append(st.Credentials, *c)
	}
	if l.seller != nil {
		st.Refusals = l.seller.counts()
	}
	return st
}

// ask sends one request to seller and reads its answer.
func (l *Lightning) ask(ctx context.Context, seller peer.ID, req Request) (Response, error) {
	h, _, err := l.running()
	if err != nil {
		return Response{}, err
	}
	return Ask(ctx, h.Libp2p(), seller, req)
}

// Ask sends one request to seller over ProtocolID from h and reads the
// answer, within the stream's time limit; a refusal is a *RefusedError
// (with the response). Buy and Use are built on it; tools and tests that
// speak the protocol directly use it.
func Ask(ctx context.Context, h host.Host, seller peer.ID, req Request) (Response, error) {
	ctx, cancel := context.WithTimeout(ctx, streamLimits.Timeout)
	defer cancel()
	s, err := h.NewStream(ctx, seller, ProtocolID)
	if err != nil {
		return Response{}, err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	w := bufio.NewWriter(s)
	if err := writeFrame(w, req, maxRequestFrame); err != nil {
		return Response{}, err
	}
	if err := w.Flush(); err != nil {
		return Response{}, err
	}
	// The request is length-prefixed: the seller needs no EOF, and may
	// already have answered and closed its side (over QUIC that fails
	// this CloseWrite), so its error is not the request's.
	_ = s.CloseWrite()
	var resp Response
	if err := readFrame(bufio.NewReader(s), maxResponseFrame, &resp); err != nil {
		return Response{}, err
	}
	if resp.Error != "" {
		return resp, &RefusedError{Code: resp.Code, Message: resp.Error}
	}
	return resp, nil
}

// RefusedError is a seller's refusal, as the buyer reads it.
type RefusedError struct {
	Code    string
	Message string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("seller refused (%s): %s", e.Code, e.Message)
}

// Services asks seller for its services.
func (l *Lightning) Services(ctx context.Context, seller peer.ID) ([]ServiceInfo, error) {
	resp, err := l.ask(ctx, seller, Request{Op: OpServices})
	if err != nil {
		return nil, err
	}
	if len(resp.Services) > MaxServices {
		return nil, fmt.Errorf("%w: %d services", ErrTooLarge, len(resp.Services))
	}
	return resp.Services, nil
}

// Buy asks seller for a token for units of service, checks that the
// invoice pays for exactly that (the advertised price × units, the
// token's payment hash, at most MaxPriceMsat), pays it through the
// backend and keeps the credential.
func (l *Lightning) Buy(ctx context.Context, seller peer.ID, service string, units uint64) (*Credential, error) {
	h, _, err := l.running()
	if err != nil {
		return nil, err
	}
	svcs, err := l.Services(ctx, seller)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(svcs, func(s ServiceInfo) bool { return s.Name == service })
	if i < 0 {
		return nil, fmt.Errorf("%w: %q at %s", ErrUnknownService, service, seller)
	}
	resp, err := l.ask(ctx, seller, Request{Op: OpChallenge, Service: service, Units: units})
	if err != nil {
		return nil, err
	}
	tok, err := DecodeToken(resp.Token)
	if err != nil {
		return nil, err
	}
	inv, err := l.cfg.Backend.DecodeInvoice(ctx, resp.Invoice)
	if err != nil {
		return nil, err
	}
	me := h.Key().DeviceID()
	want := svcs[i].PriceMsat * units
	switch {
	case units != 0 && want/units != svcs[i].PriceMsat:
		return nil, fmt.Errorf("%w: price overflows", ErrInvoiceMismatch)
	case inv.AmountMsat != want || resp.AmountMsat != want:
		return nil, fmt.Errorf("%w: invoice for %d msat, advertised %d × %d", ErrInvoiceMismatch, inv.AmountMsat, svcs[i].PriceMsat, units)
	case inv.PaymentHash != tok.PaymentHash:
		return nil, fmt.Errorf("%w: the invoice pays another hash than the token's", ErrInvoiceMismatch)
	case want > l.cfg.MaxPriceMsat:
		return nil, fmt.Errorf("%w: %d msat is over the limit of %d", ErrInvoiceMismatch, want, l.cfg.MaxPriceMsat)
	case tok.Grant.Service != service || tok.Grant.Units != units || tok.Grant.Buyer != me:
		return nil, fmt.Errorf("%w: the token grants %+v", ErrInvoiceMismatch, tok.Grant)
	}
	pre, err := l.cfg.Backend.Pay(ctx, resp.Invoice, l.cfg.MaxFeeMsat)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPaymentFailed, err)
	}
	if sha256.Sum256(pre[:]) != tok.PaymentHash {
		return nil, fmt.Errorf("%w: the backend returned a preimage of another hash", ErrPaymentFailed)
	}
	c := &Credential{Seller: seller, Service: service, Units: units, Remaining: units, AmountMsat: want, Token: resp.Token, Preimage: pre}
	l.mu.Lock()
	l.held = append(l.held, c)
	l.spentMsat += want
	l.mu.Unlock()
	return c, nil
}

// Use spends units of c on request and returns the service's answer.
func (l *Lightning) Use(ctx context.Context, c *Credential, units uint64, request []byte) ([]byte, error) {
	if len(request) > MaxServiceRequest {
		return nil, fmt.Errorf("%w: request of %d bytes", ErrTooLarge, len(request))
	}
	resp, err := l.ask(ctx, c.Seller, Request{Op: OpUse, Service: c.Service, Units: units, Token: c.Token, Preimage: c.Preimage[:], Request: request})
	l.mu.Lock()
	if err == nil {
		c.Remaining = resp.Remaining
	} else if r := (*RefusedError)(nil); errors.As(err, &r) && r.Code == "exhausted" {
		c.Remaining = 0
	}
	if c.Remaining == 0 {
		l.held = slices.DeleteFunc(l.held, func(x *Credential) bool { return x == c })
	}
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return resp.Response, nil
}

var _ ext.Extension = (*Lightning)(nil)
var _ ext.Streams = (*Lightning)(nil)

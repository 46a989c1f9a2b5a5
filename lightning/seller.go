package lightning

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bitmesh/bitmesh/identity"
)

// DefaultMaxUnits is the largest bundle of a service whose MaxUnits is 0.
const DefaultMaxUnits = 10_000

// Service is a priced service a node sells.
type Service struct {
	Name        string
	PriceMsat   uint64 // per unit; more than 0
	Unit        string // what one unit is: "message", "checkpoint", "item"
	Description string
	MaxUnits    uint64 // largest bundle one token buys; 0: DefaultMaxUnits
	// Serve performs units of the service for buyer, who paid for them,
	// and returns the answer (at most MaxServiceResponse bytes). It runs
	// on the stream's goroutine, within the stream's time limit; ctx ends
	// with it. An error is sent to the buyer; the units stay used.
	Serve func(ctx context.Context, buyer identity.DeviceID, units uint64, request []byte) ([]byte, error)
}

func (s Service) info() ServiceInfo {
	return ServiceInfo{Name: s.Name, PriceMsat: s.PriceMsat, Unit: s.Unit, Description: s.Description, MaxUnits: s.maxUnits()}
}

func (s Service) maxUnits() uint64 {
	if s.MaxUnits == 0 {
		return DefaultMaxUnits
	}
	return s.MaxUnits
}

// Sale is a token's first redemption: proof, by its preimage, that the
// buyer paid.
type Sale struct {
	PaymentHash string            `json:"payment_hash"` // hex
	TokenID     string            `json:"token_id"`     // hex
	Service     string            `json:"service"`
	Units       uint64            `json:"units"`
	AmountMsat  uint64            `json:"amount_msat"`
	Buyer       identity.DeviceID `json:"buyer"`
	Time        time.Time         `json:"time"`
}

// refusalCodes are the stable names of the refusals, as answered and
// counted.
var refusalCodes = []struct {
	err  error
	code string
}{
	{ErrMalformedToken, "malformed-token"},
	{ErrBadSignature, "bad-signature"},
	{ErrWrongPreimage, "wrong-preimage"},
	{ErrExpired, "expired"},
	{ErrWrongService, "wrong-service"},
	{ErrWrongBuyer, "wrong-buyer"},
	{ErrExhausted, "exhausted"},
	{ErrUnknownCaveat, "unknown-caveat"},
	{ErrUnknownService, "unknown-service"},
	{ErrTooLarge, "too-large"},
	{errMalformedFrame, "malformed-request"},
}

func refusalCode(err error) string {
	for _, r := range refusalCodes {
		if errors.Is(err, r.err) {
			return r.code
		}
	}
	return "failed"
}

// seller is the selling side, with no I/O of its own but the backend's
// AddInvoice and the meter's store.
type seller struct {
	minter   minter
	services map[string]Service
	backend  Backend
	meter    *meter
	ttl      time.Duration

	mu       sync.Mutex
	refusals map[string]*atomic.Uint64
}

func newSeller(m minter, services []Service, b Backend, mt *meter, ttl time.Duration) *seller {
	s := &seller{minter: m, services: map[string]Service{}, backend: b, meter: mt, ttl: ttl, refusals: map[string]*atomic.Uint64{}}
	for _, svc := range services {
		s.services[svc.Name] = svc
	}
	return s
}

func (s *seller) refused(err error) {
	code := refusalCode(err)
	s.mu.Lock()
	c := s.refusals[code]
	if c == nil {
		c = new(atomic.Uint64)
		s.refusals[code] = c
	}
	s.mu.Unlock()
	c.Add(1)
}

func (s *seller) counts() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint64, len(s.refusals))
	for k, v := range s.refusals {
		out[k] = v.Load()
	}
	return out
}

// challenge mints a token for units of service for buyer and an invoice
// for its price.
func (s *seller) challenge(ctx context.Context, now time.Time, buyer identity.DeviceID, service string, units uint64) (*Token, Invoice, error) {
	svc, ok := s.services[service]
	if !ok {
		return nil, Invoice{}, fmt.Errorf("%w: %q", ErrUnknownService, service)
	}
	if units == 0 || units > svc.maxUnits() {
		return nil, Invoice{}, fmt.Errorf("%w: %d units of %q, want 1..%d", ErrTooLarge, units, service, svc.maxUnits())
	}
	if svc.PriceMsat > ^uint64(0)/units {
		return nil, Invoice{}, fmt.Errorf("%w: price overflows", ErrTooLarge)
	}
	amount := svc.PriceMsat * units
	inv, err := s.backend.AddInvoice(ctx, amount, fmt.Sprintf("bitmesh %s × %d", service, units), s.ttl)
	if err != nil {
		return nil, Invoice{}, err
	}
	var id [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, Invoice{}, err
	}
	tok, err := s.minter.mint(inv.PaymentHash, id, Grant{Service: service, Units: units, Expires: now.Add(s.ttl), Buyer: buyer})
	if err != nil {
		return nil, Invoice{}, err
	}
	return tok, inv, nil
}

// redeem checks a presented token and preimage for buyer, uses units of
// it and serves the request. sale is set on the token's first use.
func (s *seller) redeem(ctx context.Context, now time.Time, buyer identity.DeviceID, service string, units uint64, raw, preimage, request []byte) (resp []byte, left uint64, sale *Sale, err error) {
	svc, ok := s.services[service]
	if !ok {
		return nil, 0, nil, fmt.Errorf("%w: %q", ErrUnknownService, service)
	}
	if len(preimage) != 32 {
		return nil, 0, nil, fmt.Errorf("%w: preimage of %d bytes", ErrWrongPreimage, len(preimage))
	}
	if len(request) > MaxServiceRequest {
		return nil, 0, nil, fmt.Errorf("%w: request of %d bytes", ErrTooLarge, len(request))
	}
	tok, err := s.minter.verify(now, raw, [32]byte(preimage), service, buyer)
	if err != nil {
		return nil, 0, nil, err
	}
	left, first, err := s.meter.consume(tok.ID, tok.Grant.Units, units)
	if err != nil {
		return nil, 0, nil, err
	}
	if first {
		sale = &Sale{PaymentHash: hexOf(tok.PaymentHash), TokenID: hexOf(tok.ID),
			Service: service, Units: tok.Grant.Units, AmountMsat: tok.Grant.Units * svc.PriceMsat, Buyer: buyer, Time: now.UTC()}
	}
	resp, err = svc.Serve(ctx, buyer, units, request)
	if err == nil && len(resp) > MaxServiceResponse {
		err = fmt.Errorf("%w: service answered %d bytes", ErrTooLarge, len(resp))
	}
	return resp, left, sale, err
}

func hexOf(h [32]byte) string { return hex.EncodeToString(h[:]) }

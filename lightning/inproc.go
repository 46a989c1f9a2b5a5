package lightning

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// InProcessNetwork is a deterministic Lightning network inside one
// process, for unit tests and the simulator: every backend made from it
// can pay every other's invoices at once, with no fees. Its payment
// requests are "inproc:<amount msat>:<payment hash hex>:<expiry unix>",
// not BOLT11: nothing outside the process can pay them.
type InProcessNetwork struct {
	mu       sync.Mutex
	invoices map[[32]byte]*inprocInvoice
	clock    func() time.Time
}

type inprocInvoice struct {
	Invoice
	preimage [32]byte
	settled  bool
	payee    *InProcessBackend
}

// NewInProcessNetwork returns an empty network on clock (nil: time.Now).
func NewInProcessNetwork(clock func() time.Time) *InProcessNetwork {
	if clock == nil {
		clock = time.Now
	}
	return &InProcessNetwork{invoices: map[[32]byte]*inprocInvoice{}, clock: clock}
}

// Backend returns a node of the network with balanceMsat to spend.
func (n *InProcessNetwork) Backend(balanceMsat uint64) *InProcessBackend {
	return &InProcessBackend{net: n, balance: balanceMsat}
}

// InProcessBackend is one node of an InProcessNetwork.
type InProcessBackend struct {
	net     *InProcessNetwork
	balance uint64 // guarded by net.mu
}

// Balance is what the node can still spend, in msat.
func (b *InProcessBackend) Balance() uint64 {
	b.net.mu.Lock()
	defer b.net.mu.Unlock()
	return b.balance
}

func (b *InProcessBackend) AddInvoice(_ context.Context, amountMsat uint64, _ string, ttl time.Duration) (Invoice, error) {
	var pre [32]byte
	if _, err := rand.Read(pre[:]); err != nil {
		return Invoice{}, err
	}
	hash := sha256.Sum256(pre[:])
	b.net.mu.Lock()
	defer b.net.mu.Unlock()
	exp := b.net.clock().Add(ttl).Truncate(time.Second)
	inv := Invoice{
		PaymentRequest: fmt.Sprintf("inproc:%d:%x:%d", amountMsat, hash, exp.Unix()),
		PaymentHash:    hash, AmountMsat: amountMsat, Expiry: exp,
	}
	b.net.invoices[hash] = &inprocInvoice{Invoice: inv, preimage: pre, payee: b}
	return inv, nil
}

func (b *InProcessBackend) DecodeInvoice(_ context.Context, req string) (Invoice, error) {
	return decodeInproc(req)
}

func decodeInproc(req string) (Invoice, error) {
	parts := strings.Split(req, ":")
	if len(parts) != 4 || parts[0] != "inproc" {
		return Invoice{}, fmt.Errorf("lightning: not an in-process payment request: %q", req)
	}
	amt, err1 := strconv.ParseUint(parts[1], 10, 64)
	h, err2 := hex.DecodeString(parts[2])
	exp, err3 := strconv.ParseInt(parts[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || len(h) != 32 {
		return Invoice{}, fmt.Errorf("lightning: malformed in-process payment request: %q", req)
	}
	inv := Invoice{PaymentRequest: req, AmountMsat: amt, Expiry: time.Unix(exp, 0)}
	copy(inv.PaymentHash[:], h)
	return inv, nil
}

func (b *InProcessBackend) Pay(_ context.Context, req string, _ uint64) ([32]byte, error) {
	inv, err := decodeInproc(req)
	if err != nil {
		return [32]byte{}, err
	}
	b.net.mu.Lock()
	defer b.net.mu.Unlock()
	in, ok := b.net.invoices[inv.PaymentHash]
	switch {
	case !ok:
		return [32]byte{}, fmt.Errorf("%w: no such invoice", ErrPaymentFailed)
	case in.settled:
		return [32]byte{}, fmt.Errorf("%w: invoice already paid", ErrPaymentFailed)
	case !b.net.clock().Before(in.Expiry):
		return [32]byte{}, fmt.Errorf("%w: invoice expired", ErrPaymentFailed)
	case in.AmountMsat != inv.AmountMsat:
		return [32]byte{}, fmt.Errorf("%w: amount differs from the invoice's", ErrPaymentFailed)
	case b.balance < in.AmountMsat:
		return [32]byte{}, fmt.Errorf("%w: balance %d msat, invoice %d", ErrPaymentFailed, b.balance, in.AmountMsat)
	}
	b.balance -= in.AmountMsat
	in.payee.balance += in.AmountMsat
	in.settled = true
	return in.preimage, nil
}

var _ Backend = (*InProcessBackend)(nil)

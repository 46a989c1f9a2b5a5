package lightning

import (
	"context"
	"time"
)

// Invoice is a Lightning invoice as this package needs it.
type Invoice struct {
	PaymentRequest string // BOLT11, or the in-process backend's form
	PaymentHash    [32]byte
	AmountMsat     uint64
	Expiry         time.Time
}

// Backend is a Lightning node as a seller and a buyer use it. Sellers
// create invoices; buyers decode and pay them. A seller never asks its
// backend whether a token was paid: the preimage proves it.
type Backend interface {
	// AddInvoice creates an invoice of amountMsat that expires after ttl.
	AddInvoice(ctx context.Context, amountMsat uint64, memo string, ttl time.Duration) (Invoice, error)
	// DecodeInvoice parses a payment request.
	DecodeInvoice(ctx context.Context, paymentRequest string) (Invoice, error)
	// Pay pays a payment request with at most maxFeeMsat in routing fees
	// and returns the preimage.
	Pay(ctx context.Context, paymentRequest string, maxFeeMsat uint64) ([32]byte, error)
}

package lightning

import "errors"

// Refusals of a credential. Each is a reason a seller answers a buyer
// with, counted by Seller.Refusals; none of them asks the Lightning node.
var (
	// ErrMalformedToken: the token's bytes do not decode as an L402
	// macaroon with this package's identifier.
	ErrMalformedToken = errors.New("lightning: malformed token")
	// ErrBadSignature: the macaroon was not minted by this seller, or a
	// caveat was changed, added out of order or removed.
	ErrBadSignature = errors.New("lightning: token signature does not verify")
	// ErrWrongPreimage: sha256(preimage) is not the token's payment hash.
	ErrWrongPreimage = errors.New("lightning: preimage does not match the payment hash")
	// ErrExpired: the token's expiry caveat has passed.
	ErrExpired = errors.New("lightning: token expired")
	// ErrWrongService: the token was bought for another service.
	ErrWrongService = errors.New("lightning: token is for another service")
	// ErrWrongBuyer: the token was bought by another device.
	ErrWrongBuyer = errors.New("lightning: token belongs to another buyer")
	// ErrExhausted: the token's prepaid units are used up.
	ErrExhausted = errors.New("lightning: token's units are used up")
	// ErrUnknownCaveat: a caveat this seller does not understand; refused
	// rather than ignored, as macaroons require.
	ErrUnknownCaveat = errors.New("lightning: unknown caveat")
)

// Other errors.
var (
	// ErrUnknownService: no service of that name is offered.
	ErrUnknownService = errors.New("lightning: unknown service")
	// ErrInvoiceMismatch: the seller's invoice does not pay for what was
	// asked (amount, payment hash): the buyer refuses to pay it.
	ErrInvoiceMismatch = errors.New("lightning: invoice does not match the challenge")
	// ErrPaymentFailed: the buyer's backend could not pay.
	ErrPaymentFailed = errors.New("lightning: payment failed")
	// ErrTooLarge: a message over its limit.
	ErrTooLarge = errors.New("lightning: message too large")
	// ErrClosed: the extension is not running.
	ErrClosed = errors.New("lightning: not running")
)

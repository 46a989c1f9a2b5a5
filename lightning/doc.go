// Package lightning is bitmesh's payment extension: nodes sell services to
// each other for Lightning payments, with L402 credentials (bLIP-26, the
// pattern of Lightning Labs' Aperture) carried over a libp2p stream
// instead of HTTP.
//
// # Selling
//
// A node lists Services (a name, a price in msat per unit, what a unit
// is) in Config and adds the extension to its node:
//
//	l, err := lightning.New(lightning.Config{Backend: b, Services: svcs, TokenTTL: 24 * time.Hour, …})
//	n, err := node.New(cfg, node.WithExtension(l))
//
// A buyer asks for a challenge: the seller's backend creates an invoice
// for units × price, and the seller mints a token, a macaroon
// (gopkg.in/macaroon.v2, the library lnd uses) whose identifier holds
// the invoice's payment hash and whose caveats bind it to the service,
// the number of units, an expiry and the buyer's device ID. The buyer pays
// the invoice and presents the token with the preimage. The seller checks
// the macaroon's signature under the root key it derives for the token
// (HMAC of its device key: no file, valid across restarts), that
// sha256(preimage) is the payment hash, and the caveats against the
// request, all without asking its Lightning node; then it meters the
// units (a bbolt file, DATA/lightning.db, synced before the service
// runs) and serves. One token buys a prepaid bundle, so a small device
// pays once for many requests. A token's first use is its sale: it is
// kept (Status) and, with Config.SalesTopic logged by anchor/meshlog,
// published and logged, so every sale has a receipt that verifies
// offline and is anchored with the log.
//
// # Buying
//
// Services, Buy and Use are the buyer's side. Buy refuses an invoice
// that does not pay for exactly what was advertised (price × units, the
// token's payment hash, at most Config.MaxPriceMsat), and checks that the
// preimage its backend returns is the payment hash's.
//
// # Backends
//
// A Backend creates, decodes and pays invoices. InProcessNetwork is a
// deterministic network inside one process for tests and the simulator.
//
// # Bounds
//
// One request and one response per stream, each a length-prefixed JSON
// frame (PROTOCOL.md §19): requests at most 64 KiB of service request,
// tokens at most 1 KiB, responses at most 256 KiB; four streams per peer
// and 64 in all, 30 s each. Challenges make the seller's Lightning node
// create invoices, so each peer may ask for one a second (burst 5) and
// all peers together for 20 (burst 100); more is refused and scored. A
// frame that is not one strict JSON object is scored as malformed.
package lightning

package lightning

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/macaroon.v2"

	"github.com/bitmesh/bitmesh/identity"
)

// An L402 token is a macaroon (gopkg.in/macaroon.v2, as lnd uses) whose
// identifier binds it to a Lightning payment hash, as Lightning Labs'
// Aperture does:
//
//	identifier = version (uint16, big-endian, 0) ‖ payment hash (32 B) ‖ token ID (32 B)
//
// and whose first-party caveats, "key=value", say what it pays for. The
// seller verifies a presented token with its root key for the token ID
// and sha256(preimage) = payment hash, without asking its Lightning node.
const (
	tokenVersion  = 0
	identifierLen = 2 + 32 + 32

	caveatService = "bitmesh_service"
	caveatUnits   = "bitmesh_units"
	caveatExpires = "bitmesh_expires" // Unix seconds
	caveatBuyer   = "bitmesh_buyer"   // device ID

	// MaxTokenSize bounds an encoded token: the identifier, four caveats
	// and a signature are well under it.
	MaxTokenSize = 1024
)

// Grant is what a token pays for.
type Grant struct {
	Service string
	Units   uint64
	Expires time.Time
	Buyer   identity.DeviceID
}

// Token is an L402 credential: the macaroon and, once paid, the preimage.
type Token struct {
	PaymentHash [32]byte
	ID          [32]byte
	Grant       Grant
	mac         *macaroon.Macaroon
}

// Encode returns the macaroon's binary (v2) encoding.
func (t *Token) Encode() ([]byte, error) { return t.mac.MarshalBinary() }

// minter mints and verifies tokens with root keys derived from a seller
// secret: rootKey(id) = HMAC-SHA256(secret, id). The secret is derived from
// the seller's device key, so a restart keeps every token valid and no
// file holds it.
type minter struct {
	secret [32]byte
}

func newMinter(key *identity.PrivateKey) minter {
	mac := hmac.New(sha256.New, key.Bytes())
	mac.Write([]byte("bitmesh/l402/root-key/v1"))
	var m minter
	copy(m.secret[:], mac.Sum(nil))
	return m
}

func (m minter) rootKey(id [32]byte) []byte {
	mac := hmac.New(sha256.New, m.secret[:])
	mac.Write(id[:])
	return mac.Sum(nil)
}

// mint makes a token for hash with g's caveats; id must be random.
func (m minter) mint(hash, id [32]byte, g Grant) (*Token, error) {
	ident := make([]byte, 0, identifierLen)
	ident = binary.BigEndian.AppendUint16(ident, tokenVersion)
	ident = append(ident, hash[:]...)
	ident = append(ident, id[:]...)
	mac, err := macaroon.New(m.rootKey(id), ident, "bitmesh", macaroon.V2)
	if err != nil {
		return nil, err
	}
	for _, c := range []string{
		caveatService + "=" + g.Service,
		caveatUnits + "=" + strconv.FormatUint(g.Units, 10),
		caveatExpires + "=" + strconv.FormatInt(g.Expires.Unix(), 10),
		caveatBuyer + "=" + g.Buyer.String(),
	} {
		if err := mac.AddFirstPartyCaveat([]byte(c)); err != nil {
			return nil, err
		}
	}
	return &Token{PaymentHash: hash, ID: id, Grant: g, mac: mac}, nil
}

// DecodeToken parses a token's bytes without verifying it: what a buyer
// reads of the challenge it got, and the first step of verify.
func DecodeToken(b []byte) (*Token, error) {
	if len(b) > MaxTokenSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformedToken, len(b), MaxTokenSize)
	}
	var mac macaroon.Macaroon
	if err := mac.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedToken, err)
	}
	id := mac.Id()
	if len(id) != identifierLen || binary.BigEndian.Uint16(id) != tokenVersion {
		return nil, fmt.Errorf("%w: identifier of %d bytes", ErrMalformedToken, len(id))
	}
	t := &Token{mac: &mac}
	copy(t.PaymentHash[:], id[2:34])
	copy(t.ID[:], id[34:])
	seen := map[string]bool{}
	for _, c := range mac.Caveats() {
		if c.VerificationId != nil {
			return nil, fmt.Errorf("%w: third-party caveat", ErrUnknownCaveat)
		}
		k, v, ok := strings.Cut(string(c.Id), "=")
		if !ok || seen[k] {
			return nil, fmt.Errorf("%w: %q", ErrUnknownCaveat, c.Id)
		}
		seen[k] = true
		var err error
		switch k {
		case caveatService:
			t.Grant.Service = v
		case caveatUnits:
			t.Grant.Units, err = strconv.ParseUint(v, 10, 64)
		case caveatExpires:
			var s int64
			s, err = strconv.ParseInt(v, 10, 64)
			t.Grant.Expires = time.Unix(s, 0)
		case caveatBuyer:
			t.Grant.Buyer, err = identity.ParseDeviceID(v)
		default:
			return nil, fmt.Errorf("%w: %q", ErrUnknownCaveat, k)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: caveat %s: %v", ErrMalformedToken, k, err)
		}
	}
	if len(seen) != 4 {
		return nil, fmt.Errorf("%w: %d of the 4 caveats", ErrMalformedToken, len(seen))
	}
	return t, nil
}

// verify checks a presented token: the macaroon's signature under this
// seller's root key, the preimage against the payment hash, and the
// caveats against the request (service, buyer) at now. It returns the
// decoded token; metering its units is the caller's.
func (m minter) verify(now time.Time, raw []byte, preimage [32]byte, service string, buyer identity.DeviceID) (*Token, error) {
	t, err := DecodeToken(raw)
	if err != nil {
		return nil, err
	}
	// The signature first: a forged or altered caveat must not be
	// reported as anything else.
	if _, err := t.mac.VerifySignature(m.rootKey(t.ID), nil); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if h := sha256.Sum256(preimage[:]); !hmac.Equal(h[:], t.PaymentHash[:]) {
		return nil, ErrWrongPreimage
	}
	switch {
	case !now.Before(t.Grant.Expires):
		return nil, fmt.Errorf("%w at %v", ErrExpired, t.Grant.Expires.UTC())
	case t.Grant.Service != service:
		return nil, fmt.Errorf("%w: %q", ErrWrongService, t.Grant.Service)
	case t.Grant.Buyer != buyer:
		return nil, fmt.Errorf("%w: %s", ErrWrongBuyer, t.Grant.Buyer)
	}
	return t, nil
}

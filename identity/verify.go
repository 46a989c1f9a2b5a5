package identity

import (
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"
)

// domainChallenge is BIP-340's challenge tag.
const domainChallenge Domain = "BIP0340/challenge"

// verifyParsed is BIP-340 verification (the "Verification" algorithm of the
// BIP) against a key already lifted to a point with even Y, whose x-only
// encoding is x. btcec's Signature.Verify takes a point too but serialises
// and lifts it again (a field square root, ~6 % of a verify); working on the
// point directly lets a cached PublicKey skip the lift entirely.
func verifyParsed(pk *btcec.PublicKey, x *DeviceID, msg [32]byte, sig Signature) error {
	// r = int(sig[0:32]); fail if r ≥ p. s = int(sig[32:64]); fail if s ≥ n.
	var r btcec.FieldVal
	if overflow := r.SetByteSlice(sig[:32]); overflow {
		return fmt.Errorf("%w: r is not below the field size", ErrBadSignature)
	}
	var s btcec.ModNScalar
	if overflow := s.SetByteSlice(sig[32:]); overflow {
		return fmt.Errorf("%w: s is not below the curve order", ErrBadSignature)
	}
	// e = int(hash_BIP0340/challenge(r || x(P) || m)) mod n.
	h := domainChallenge.NewHash()
	h.Write(sig[:32])
	h.Write(x[:])
	h.Write(msg[:])
	var digest [32]byte
	h.Sum(digest[:0])
	var e btcec.ModNScalar
	e.SetBytes(&digest)
	// R = s·G − e·P.
	e.Negate()
	var p, sG, eP, rPoint btcec.JacobianPoint
	pk.AsJacobian(&p)
	btcec.ScalarBaseMultNonConst(&s, &sG)
	btcec.ScalarMultNonConst(&e, &p, &eP)
	btcec.AddNonConst(&sG, &eP, &rPoint)
	// Fail if R is infinity, has odd Y, or x(R) ≠ r.
	if (rPoint.X.IsZero() && rPoint.Y.IsZero()) || rPoint.Z.IsZero() {
		return ErrBadSignature
	}
	rPoint.ToAffine()
	if rPoint.Y.IsOdd() || !rPoint.X.Equals(&r) {
		return ErrBadSignature
	}
	return nil
}

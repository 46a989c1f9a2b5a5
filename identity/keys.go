package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"
)

// PrivateKeySize is the length of a serialised private key.
const PrivateKeySize = 32

// SignatureSize is the length of a BIP-340 signature.
const SignatureSize = 64

// Signature is a 64-byte BIP-340 Schnorr signature.
type Signature [SignatureSize]byte

// PrivateKey is a device's secp256k1 secret key, normalised so that its public
// key has an even Y coordinate. It is safe for concurrent use.
type PrivateKey struct {
	key *btcec.PrivateKey // set at creation, never modified
	id  DeviceID
	// signedOnce is set after the first signature, which was verified.
	signedOnce atomic.Bool
}

// Generate returns a new random key.
func Generate() (*PrivateKey, error) {
	var b [PrivateKeySize]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("identity: reading randomness: %w", err)
		}
		if k, err := PrivateKeyFromBytes(b[:]); err == nil {
			return k, nil
		}
	}
}

// PrivateKeyFromBytes parses a 32-byte big-endian secret scalar. Zero and
// values not below the curve order are rejected. The key is negated if needed
// so that its public key has an even Y coordinate.
func PrivateKeyFromBytes(b []byte) (*PrivateKey, error) {
	if len(b) != PrivateKeySize {
		return nil, fmt.Errorf("identity: private key is %d bytes, want %d", len(b), PrivateKeySize)
	}
	var s btcec.ModNScalar
	if overflow := s.SetByteSlice(b); overflow || s.IsZero() {
		return nil, fmt.Errorf("identity: private key out of range")
	}
	k := btcec.PrivKeyFromScalar(&s)
	if k.PubKey().SerializeCompressed()[0] == 0x03 {
		s.Negate()
		k = btcec.PrivKeyFromScalar(&s)
	}
	p := &PrivateKey{key: k}
	copy(p.id[:], schnorr.SerializePubKey(k.PubKey()))
	return p, nil
}

// Bytes returns the 32-byte secret scalar (even-Y normalised).
func (k *PrivateKey) Bytes() []byte { return k.key.Serialize() }

// DeviceID returns the device ID: the BIP-340 x-only public key.
func (k *PrivateKey) DeviceID() DeviceID { return k.id }

// Sign signs msg in the given domain: the BIP-340 message is
// domain.Hash(msg). Safe for concurrent use.
func (k *PrivateKey) Sign(d Domain, msg []byte) (Signature, error) {
	return k.SignHash(d.Hash(msg))
}

// SignHash makes a BIP-340 signature over a 32-byte message that must itself
// be a Domain.Hash output (an envelope ID, for instance): signing a digest of
// another construction would forfeit domain separation. Nonces follow BIP-340
// with fresh auxiliary randomness.
//
// Only the key's first signature is verified before it is returned.
// BIP-340 suggests verifying every signature a signer makes, to catch a
// broken implementation or key; btcec does so by default, which makes
// signing cost more than twice the signature alone. The first signature
// catches a broken key or library; after it, every signature is verified
// by each node that receives it (and a bad one is refused, never
// delivered), and fresh auxiliary randomness per signature keeps a fault
// from repeating a nonce. Signing thus costs less than half.
func (k *PrivateKey) SignHash(h [32]byte) (Signature, error) {
	var aux [32]byte
	if _, err := rand.Read(aux[:]); err != nil {
		return Signature{}, fmt.Errorf("identity: reading randomness: %w", err)
	}
	if k.signedOnce.Load() {
		return signBIP340(k, h, schnorr.CustomNonce(aux), schnorr.FastSign())
	}
	sig, err := SignBIP340(k, h, aux)
	if err == nil {
		k.signedOnce.Store(true)
	}
	return sig, err
}

// SignBIP340 is the raw BIP-340 signing algorithm over a 32-byte message with
// the given auxiliary randomness; the signature is verified before it is
// returned. It exists for test vectors and for constructions that already
// hash with a domain tag; prefer Sign.
func SignBIP340(k *PrivateKey, msg [32]byte, auxRand [32]byte) (Signature, error) {
	return signBIP340(k, msg, schnorr.CustomNonce(auxRand))
}

func signBIP340(k *PrivateKey, msg [32]byte, opts ...schnorr.SignOption) (Signature, error) {
	sig, err := schnorr.Sign(k.key, msg[:], opts...)
	if err != nil {
		return Signature{}, fmt.Errorf("identity: signing: %w", err)
	}
	var out Signature
	copy(out[:], sig.Serialize())
	return out, nil
}

// VerifyBIP340 is the raw BIP-340 verification algorithm over a 32-byte
// message. It returns nil only for a valid signature.
func VerifyBIP340(pub DeviceID, msg [32]byte, sig Signature) error {
	pk, err := pub.publicKey()
	if err != nil {
		return err
	}
	return verifyParsed(pk, &pub, msg, sig)
}

// Domain is a BIP-340 tag that separates what a signature or hash is for.
type Domain string

// The domains bitmesh signs in. Never reuse one for a new kind of object.
const (
	DomainEnvelope    Domain = "bitmesh/envelope"
	DomainNetwork     Domain = "bitmesh/network"
	DomainCheckpoint  Domain = "bitmesh/checkpoint"
	DomainCertificate Domain = "bitmesh/certificate"
)

// Hash returns the BIP-340 tagged hash of the concatenation of parts:
// SHA256(SHA256(tag) || SHA256(tag) || parts...).
func (d Domain) Hash(parts ...[]byte) [32]byte {
	h := d.NewHash()
	for _, p := range parts {
		h.Write(p)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// tagStates caches, per domain, SHA-256's state after absorbing the 64-byte
// prefix SHA256(tag)||SHA256(tag), so a tagged hash costs no compression
// more than a plain one. Domains are a handful of constants: it stays tiny.
var tagStates sync.Map // Domain → []byte (marshalled sha256 state)

// NewHash returns a SHA-256 hash that has already absorbed d's tag prefix:
// writing msg to it and summing gives d.Hash(msg). For hot paths that hash
// in pieces.
func (d Domain) NewHash() hash.Hash {
	st, ok := tagStates.Load(d)
	if !ok {
		tag := sha256.Sum256([]byte(d))
		h := sha256.New()
		h.Write(tag[:])
		h.Write(tag[:])
		b, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			panic("identity: sha256 state cannot be marshalled: " + err.Error())
		}
		st, _ = tagStates.LoadOrStore(d, b)
	}
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.([]byte)); err != nil {
		panic("identity: sha256 state cannot be restored: " + err.Error())
	}
	return h
}

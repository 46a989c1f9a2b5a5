package identity

import (
	"encoding/hex"
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"
	"github.com/btcsuite/btcd/btcutil/bech32"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// DeviceIDPrefix is the bech32 human-readable part of a device ID's text form.
const DeviceIDPrefix = "bmdev"

// DeviceID names a device: its 32-byte BIP-340 x-only public key. The text
// form is bech32 with prefix "bmdev" (as Nostr's npub), so a mistyped ID is
// detected by its checksum.
type DeviceID [32]byte

// String returns the bech32 text form.
func (id DeviceID) String() string {
	conv, err := bech32.ConvertBits(id[:], 8, 5, true)
	if err != nil {
		panic("identity: bech32 conversion of 32 bytes cannot fail: " + err.Error())
	}
	s, err := bech32.Encode(DeviceIDPrefix, conv)
	if err != nil {
		panic("identity: bech32 encoding of a device ID cannot fail: " + err.Error())
	}
	return s
}

// Hex returns the lowercase hex form of the x-only key.
func (id DeviceID) Hex() string { return hex.EncodeToString(id[:]) }

// ParseDeviceID parses the bech32 text form. A wrong prefix, checksum or
// length is an error wrapping ErrBadDeviceID. The key itself must be a valid
// x coordinate on the curve.
func ParseDeviceID(s string) (DeviceID, error) {
	var id DeviceID
	hrp, data, ver, err := bech32.DecodeGeneric(s)
	if err != nil {
		return id, fmt.Errorf("%w: %v", ErrBadDeviceID, err)
	}
	if ver != bech32.Version0 {
		return id, fmt.Errorf("%w: bech32m checksum, want bech32", ErrBadDeviceID)
	}
	if hrp != DeviceIDPrefix {
		return id, fmt.Errorf("%w: prefix %q, want %q", ErrBadDeviceID, hrp, DeviceIDPrefix)
	}
	b, err := bech32.ConvertBits(data, 5, 8, false)
	if err != nil {
		return id, fmt.Errorf("%w: %v", ErrBadDeviceID, err)
	}
	if len(b) != len(id) {
		return id, fmt.Errorf("%w: %d key bytes, want %d", ErrBadDeviceID, len(b), len(id))
	}
	copy(id[:], b)
	if _, err := id.publicKey(); err != nil {
		return DeviceID{}, err
	}
	return id, nil
}

// MarshalText implements encoding.TextMarshaler (bech32 form).
func (id DeviceID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (bech32 form).
func (id *DeviceID) UnmarshalText(b []byte) error {
	v, err := ParseDeviceID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// Verify checks a signature made by Sign in domain d over msg.
func (id DeviceID) Verify(d Domain, msg []byte, sig Signature) error {
	return VerifyBIP340(id, d.Hash(msg), sig)
}

func (id DeviceID) publicKey() (*btcec.PublicKey, error) {
	pk, err := schnorr.ParsePubKey(id[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadDeviceID, err)
	}
	return pk, nil
}

// PublicKey is a parsed device key, ready for repeated verification: parsing
// an x-only key costs a square root, so hot paths keep these instead of
// DeviceIDs.
type PublicKey struct {
	id DeviceID
	pk *btcec.PublicKey
}

// ParsePublicKey lifts a device ID to a curve point.
func (id DeviceID) ParsePublicKey() (PublicKey, error) {
	pk, err := id.publicKey()
	if err != nil {
		return PublicKey{}, err
	}
	return PublicKey{id: id, pk: pk}, nil
}

// DeviceID returns the key's device ID.
func (p PublicKey) DeviceID() DeviceID { return p.id }

// VerifyHash checks a BIP-340 signature over a 32-byte Domain.Hash output.
func (p PublicKey) VerifyHash(h [32]byte, sig Signature) error {
	if p.pk == nil {
		return fmt.Errorf("%w: zero PublicKey", ErrBadDeviceID)
	}
	return verifyParsed(p.pk, &p.id, h, sig)
}

// Libp2pKey returns the key as a libp2p host key (libp2p's secp256k1 type).
func (k *PrivateKey) Libp2pKey() crypto.PrivKey {
	return (*crypto.Secp256k1PrivateKey)(k.key)
}

// PeerID returns the libp2p peer ID of the device key.
func (id DeviceID) PeerID() (peer.ID, error) {
	pk, err := id.publicKey()
	if err != nil {
		return "", err
	}
	return peer.IDFromPublicKey((*crypto.Secp256k1PublicKey)(pk))
}

// DeviceIDFromPeerID recovers the device ID from a peer ID. It fails for peers
// whose key is not secp256k1 or whose key has an odd Y coordinate (bitmesh
// always normalises to even Y, so such a peer is not a bitmesh device key).
func DeviceIDFromPeerID(p peer.ID) (DeviceID, error) {
	pub, err := p.ExtractPublicKey()
	if err != nil {
		return DeviceID{}, fmt.Errorf("%w: peer %s: %v", ErrBadDeviceID, p, err)
	}
	sk, ok := pub.(*crypto.Secp256k1PublicKey)
	if !ok {
		return DeviceID{}, fmt.Errorf("%w: peer %s has a %s key, want secp256k1", ErrBadDeviceID, p, pub.Type())
	}
	c := (*btcec.PublicKey)(sk).SerializeCompressed()
	if c[0] != 0x02 {
		return DeviceID{}, fmt.Errorf("%w: peer %s key has odd Y", ErrBadDeviceID, p)
	}
	var id DeviceID
	copy(id[:], c[1:])
	return id, nil
}

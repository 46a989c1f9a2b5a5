package identity

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	mathrand "math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"
	"github.com/btcsuite/btcd/btcutil/bech32"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// curveOrderHex is N, the order of the secp256k1 group.
const curveOrderHex = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141"

// notOnCurveHex is the public key of BIP-340 vector 5: not an x coordinate
// of any curve point.
const notOnCurveHex = "EEFDEA4CDB677750A420FEE807EACF21EB9898AE79B9768766E4FAA04A2D4A34"

// aboveFieldHex is the public key of BIP-340 vector 14: p itself plus one,
// not a field element.
const aboveFieldHex = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC30"

var allDomains = []Domain{DomainEnvelope, DomainNetwork, DomainCheckpoint, DomainCertificate}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustGenerate(t testing.TB) *PrivateKey {
	t.Helper()
	k, err := Generate()
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return k
}

func mustKey(t testing.TB, b []byte) *PrivateKey {
	t.Helper()
	k, err := PrivateKeyFromBytes(b)
	if err != nil {
		t.Fatalf("PrivateKeyFromBytes(%x): %v", b, err)
	}
	return k
}

// scalarBytes returns v as a 32-byte big-endian scalar.
func scalarBytes(v *big.Int) []byte {
	return v.FillBytes(make([]byte, 32))
}

// oddYScalar returns a secret scalar whose public key has an odd Y
// coordinate (compressed prefix 0x03), searching up from 1.
func oddYScalar(t testing.TB) []byte {
	t.Helper()
	for i := int64(1); i < 1000; i++ {
		b := scalarBytes(big.NewInt(i))
		priv, _ := btcec.PrivKeyFromBytes(b)
		if priv.PubKey().SerializeCompressed()[0] == 0x03 {
			return b
		}
	}
	t.Fatal("no odd-Y scalar below 1000")
	return nil
}

// encodeID encodes data as bech32 (or bech32m) with the given prefix.
func encodeID(t testing.TB, hrp string, data []byte, m bool) string {
	t.Helper()
	conv, err := bech32.ConvertBits(data, 8, 5, true)
	if err != nil {
		t.Fatal(err)
	}
	enc := bech32.Encode
	if m {
		enc = bech32.EncodeM
	}
	s, err := enc(hrp, conv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func flipBit(b []byte, bit int) []byte {
	out := bytes.Clone(b)
	out[bit/8] ^= 1 << (bit % 8)
	return out
}

func TestSignVerifyDomainSeparation(t *testing.T) {
	key := mustGenerate(t)
	other := mustGenerate(t)
	msg := []byte("the quick brown fox")
	sig, err := key.Sign(DomainEnvelope, msg)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	flippedSig := sig
	flippedSig[SignatureSize-1] ^= 1

	tests := []struct {
		name    string
		id      DeviceID
		domain  Domain
		msg     []byte
		sig     Signature
		wantErr error
	}{
		{"same key domain and message", key.DeviceID(), DomainEnvelope, msg, sig, nil},
		{"checkpoint domain", key.DeviceID(), DomainCheckpoint, msg, sig, ErrBadSignature},
		{"certificate domain", key.DeviceID(), DomainCertificate, msg, sig, ErrBadSignature},
		{"network domain", key.DeviceID(), DomainNetwork, msg, sig, ErrBadSignature},
		{"empty domain", key.DeviceID(), Domain(""), msg, sig, ErrBadSignature},
		{"other key", other.DeviceID(), DomainEnvelope, msg, sig, ErrBadSignature},
		{"first message bit flipped", key.DeviceID(), DomainEnvelope, flipBit(msg, 0), sig, ErrBadSignature},
		{"last message bit flipped", key.DeviceID(), DomainEnvelope, flipBit(msg, len(msg)*8-1), sig, ErrBadSignature},
		{"message truncated", key.DeviceID(), DomainEnvelope, msg[:len(msg)-1], sig, ErrBadSignature},
		{"message extended", key.DeviceID(), DomainEnvelope, append(bytes.Clone(msg), 0), sig, ErrBadSignature},
		{"signature bit flipped", key.DeviceID(), DomainEnvelope, msg, flippedSig, ErrBadSignature},
		{"zero signature", key.DeviceID(), DomainEnvelope, msg, Signature{}, ErrBadSignature},
		{"zero device ID", DeviceID{}, DomainEnvelope, msg, sig, ErrBadDeviceID},
		{"device ID not on curve", DeviceID(mustHex(t, notOnCurveHex)), DomainEnvelope, msg, sig, ErrBadDeviceID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.id.Verify(tt.domain, tt.msg, tt.sig)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestDomainMatrix checks that a signature made in each domain verifies in
// that domain only, both through DeviceID.Verify and PublicKey.VerifyHash.
func TestDomainMatrix(t *testing.T) {
	key := mustGenerate(t)
	pk, err := key.DeviceID().ParsePublicKey()
	if err != nil {
		t.Fatalf("ParsePublicKey: %v", err)
	}
	if pk.DeviceID() != key.DeviceID() {
		t.Fatalf("PublicKey.DeviceID = %s, want %s", pk.DeviceID(), key.DeviceID())
	}
	msg := []byte("matrix")
	for _, signIn := range allDomains {
		sig, err := key.Sign(signIn, msg)
		if err != nil {
			t.Fatalf("Sign(%s): %v", signIn, err)
		}
		for _, verifyIn := range allDomains {
			t.Run(fmt.Sprintf("signed %s verified %s", signIn, verifyIn), func(t *testing.T) {
				want := signIn == verifyIn
				err := key.DeviceID().Verify(verifyIn, msg, sig)
				if got := err == nil; got != want {
					t.Errorf("Verify = %v, want valid=%v", err, want)
				}
				err = pk.VerifyHash(verifyIn.Hash(msg), sig)
				if got := err == nil; got != want {
					t.Errorf("VerifyHash = %v, want valid=%v", err, want)
				}
				if !want && !errors.Is(err, ErrBadSignature) {
					t.Errorf("VerifyHash = %v, want ErrBadSignature", err)
				}
			})
		}
	}
}

func TestSignHashAndPublicKey(t *testing.T) {
	key := mustGenerate(t)
	h := DomainCheckpoint.Hash([]byte("checkpoint body"))
	sig, err := key.SignHash(h)
	if err != nil {
		t.Fatalf("SignHash: %v", err)
	}
	if err := VerifyBIP340(key.DeviceID(), h, sig); err != nil {
		t.Fatalf("VerifyBIP340: %v", err)
	}
	if err := key.DeviceID().Verify(DomainCheckpoint, []byte("checkpoint body"), sig); err != nil {
		t.Fatalf("Verify of SignHash(Domain.Hash(msg)): %v", err)
	}
	pk, err := key.DeviceID().ParsePublicKey()
	if err != nil {
		t.Fatalf("ParsePublicKey: %v", err)
	}
	otherHash := h
	otherHash[0] ^= 0x80
	tests := []struct {
		name    string
		pk      PublicKey
		h       [32]byte
		wantErr error
	}{
		{"valid", pk, h, nil},
		{"other hash", pk, otherHash, ErrBadSignature},
		{"zero PublicKey", PublicKey{}, h, ErrBadDeviceID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.pk.VerifyHash(tt.h, sig)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("VerifyHash = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("VerifyHash = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestSignFreshNonces(t *testing.T) {
	key := mustGenerate(t)
	msg := []byte("same message")
	a, err := key.Sign(DomainEnvelope, msg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := key.Sign(DomainEnvelope, msg)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Error("two signatures of the same message are identical; aux randomness not used")
	}
	for i, sig := range []Signature{a, b} {
		if err := key.DeviceID().Verify(DomainEnvelope, msg, sig); err != nil {
			t.Errorf("signature %d: %v", i, err)
		}
	}
}

// TestSignConcurrent backs the claim that PrivateKey is safe for concurrent
// use; run with -race.
func TestSignConcurrent(t *testing.T) {
	key := mustGenerate(t)
	pk, err := key.DeviceID().ParsePublicKey()
	if err != nil {
		t.Fatal(err)
	}
	const workers, perWorker = 8, 10
	errs := make(chan error, workers*perWorker)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				msg := fmt.Appendf(nil, "worker %d message %d", w, i)
				sig, err := key.Sign(DomainEnvelope, msg)
				if err == nil {
					err = pk.VerifyHash(DomainEnvelope.Hash(msg), sig)
				}
				if err == nil {
					err = key.DeviceID().Verify(DomainEnvelope, msg, sig)
				}
				if err == nil {
					_, err = key.DeviceID().PeerID()
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestDomainHash(t *testing.T) {
	manual := func(tag string, msg []byte) [32]byte {
		th := sha256.Sum256([]byte(tag))
		buf := append(append(append([]byte{}, th[:]...), th[:]...), msg...)
		return sha256.Sum256(buf)
	}
	tests := []struct {
		name   string
		domain Domain
		parts  [][]byte
		whole  []byte
	}{
		{"no parts", DomainEnvelope, nil, nil},
		{"one empty part", DomainEnvelope, [][]byte{{}}, nil},
		{"one part", DomainEnvelope, [][]byte{[]byte("hello")}, []byte("hello")},
		{"two parts", DomainCheckpoint, [][]byte{[]byte("ab"), []byte("cd")}, []byte("abcd")},
		{"split differently", DomainCheckpoint, [][]byte{[]byte("a"), []byte("bcd")}, []byte("abcd")},
		{"empty parts interleaved", DomainCertificate, [][]byte{nil, []byte("x"), {}, []byte("y"), nil}, []byte("xy")},
		{"long part", DomainNetwork, [][]byte{bytes.Repeat([]byte{0xA5}, 1000)}, bytes.Repeat([]byte{0xA5}, 1000)},
		{"BIP-340 tag", Domain("BIP0340/challenge"), [][]byte{[]byte("x")}, []byte("x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.domain.Hash(tt.parts...)
			if want := manual(string(tt.domain), tt.whole); got != want {
				t.Errorf("Hash = %x, want manual %x", got, want)
			}
			if whole := tt.domain.Hash(tt.whole); got != whole {
				t.Errorf("Hash(parts...) = %x, Hash(concatenation) = %x", got, whole)
			}
			// btcec's BIP-340 code uses chainhash.TaggedHash; the two
			// constructions must agree.
			if want := chainhash.TaggedHash([]byte(tt.domain), tt.whole); got != [32]byte(*want) {
				t.Errorf("Hash = %x, chainhash.TaggedHash = %x", got, want[:])
			}
		})
	}
	t.Run("domains differ", func(t *testing.T) {
		seen := map[[32]byte]Domain{}
		for _, d := range allDomains {
			h := d.Hash([]byte("m"))
			if prev, ok := seen[h]; ok {
				t.Errorf("%s and %s hash alike", prev, d)
			}
			seen[h] = d
		}
	})
}

func TestEvenYNormalisation(t *testing.T) {
	for i := range 200 {
		key := mustGenerate(t)
		id := key.DeviceID()
		raw, err := key.Libp2pKey().GetPublic().Raw()
		if err != nil {
			t.Fatalf("key %d: Raw: %v", i, err)
		}
		if len(raw) != 33 || raw[0] != 0x02 {
			t.Fatalf("key %d: libp2p public key %x, want 33 bytes starting 02", i, raw)
		}
		if !bytes.Equal(raw[1:], id[:]) {
			t.Fatalf("key %d: libp2p x %x != device ID %x", i, raw[1:], id[:])
		}
		pid, err := id.PeerID()
		if err != nil {
			t.Fatalf("key %d: PeerID: %v", i, err)
		}
		want, err := peer.IDFromPrivateKey(key.Libp2pKey())
		if err != nil {
			t.Fatalf("key %d: IDFromPrivateKey: %v", i, err)
		}
		if pid != want {
			t.Fatalf("key %d: PeerID %s, want %s", i, pid, want)
		}
		back, err := DeviceIDFromPeerID(pid)
		if err != nil {
			t.Fatalf("key %d: DeviceIDFromPeerID: %v", i, err)
		}
		if back != id {
			t.Fatalf("key %d: DeviceIDFromPeerID = %s, want %s", i, back, id)
		}
		again, err := PrivateKeyFromBytes(key.Bytes())
		if err != nil {
			t.Fatalf("key %d: PrivateKeyFromBytes(Bytes()): %v", i, err)
		}
		if again.DeviceID() != id || !bytes.Equal(again.Bytes(), key.Bytes()) {
			t.Fatalf("key %d: Bytes round trip changed the key", i)
		}
	}
}

func TestLibp2pKeySignsForPeer(t *testing.T) {
	key := mustGenerate(t)
	pid, err := key.DeviceID().PeerID()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := pid.ExtractPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("libp2p handshake")
	sig, err := key.Libp2pKey().Sign(data)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := pub.Verify(data, sig)
	if err != nil || !ok {
		t.Fatalf("libp2p signature does not verify under the device's peer ID: ok=%v err=%v", ok, err)
	}
}

func TestDeviceIDFromPeerIDRejects(t *testing.T) {
	edPriv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	edPeer, err := peer.IDFromPrivateKey(edPriv)
	if err != nil {
		t.Fatal(err)
	}

	oddPriv, _ := btcec.PrivKeyFromBytes(oddYScalar(t))
	if p := oddPriv.PubKey().SerializeCompressed()[0]; p != 0x03 {
		t.Fatalf("test key prefix %02x, want 03", p)
	}
	oddPeer, err := peer.IDFromPrivateKey((*crypto.Secp256k1PrivateKey)(oddPriv))
	if err != nil {
		t.Fatal(err)
	}

	// A peer ID that is a plain multihash of a key (not an inlined
	// identity hash) does not carry the key at all.
	rsaLike, err := peer.Decode("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		id   peer.ID
	}{
		{"ed25519 key", edPeer},
		{"secp256k1 key with odd Y", oddPeer},
		{"hashed key", rsaLike},
		{"empty peer ID", peer.ID("")},
		{"garbage peer ID", peer.ID("\x00\x01garbage")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := DeviceIDFromPeerID(tt.id)
			if !errors.Is(err, ErrBadDeviceID) {
				t.Fatalf("DeviceIDFromPeerID = %s, %v; want ErrBadDeviceID", id, err)
			}
			if id != (DeviceID{}) {
				t.Errorf("DeviceIDFromPeerID returned non-zero ID %s with an error", id)
			}
		})
	}
}

func TestPrivateKeyFromBytesOddY(t *testing.T) {
	s := oddYScalar(t)
	orig, _ := btcec.PrivKeyFromBytes(s)
	x := orig.PubKey().SerializeCompressed()[1:]

	key := mustKey(t, s)
	id := key.DeviceID()
	if !bytes.Equal(id[:], x) {
		t.Fatalf("DeviceID = %x, want x coordinate %x", id[:], x)
	}
	// The stored scalar is N - s.
	n, _ := new(big.Int).SetString(curveOrderHex, 16)
	negated := scalarBytes(new(big.Int).Sub(n, new(big.Int).SetBytes(s)))
	if !bytes.Equal(key.Bytes(), negated) {
		t.Errorf("Bytes = %x, want N-s = %x", key.Bytes(), negated)
	}
	if twin := mustKey(t, negated); twin.DeviceID() != id {
		t.Errorf("N-s gives device ID %s, want %s", twin.DeviceID(), id)
	}
	raw, err := key.Libp2pKey().GetPublic().Raw()
	if err != nil {
		t.Fatal(err)
	}
	if raw[0] != 0x02 {
		t.Errorf("libp2p key prefix %02x, want 02", raw[0])
	}
	msg := []byte("odd")
	sig, err := key.Sign(DomainEnvelope, msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := id.Verify(DomainEnvelope, msg, sig); err != nil {
		t.Errorf("Verify: %v", err)
	}
	pid, err := id.PeerID()
	if err != nil {
		t.Fatal(err)
	}
	if back, err := DeviceIDFromPeerID(pid); err != nil || back != id {
		t.Errorf("DeviceIDFromPeerID = %s, %v; want %s", back, err, id)
	}
}

func TestPrivateKeyFromBytes(t *testing.T) {
	n, _ := new(big.Int).SetString(curveOrderHex, 16)
	one := big.NewInt(1)
	tests := []struct {
		name    string
		in      []byte
		wantErr bool
	}{
		{"one", scalarBytes(one), false},
		{"N-1", scalarBytes(new(big.Int).Sub(n, one)), false},
		{"BIP-340 vector 1 key", mustHex(t, "B7E151628AED2A6ABF7158809CF4F3C762E7160F38B4DA56A784D9045190CFEF"), false},
		{"nil", nil, true},
		{"empty", []byte{}, true},
		{"31 bytes", bytes.Repeat([]byte{1}, 31), true},
		{"33 bytes", bytes.Repeat([]byte{1}, 33), true},
		{"64 bytes", bytes.Repeat([]byte{1}, 64), true},
		{"zero", make([]byte, 32), true},
		{"curve order N", mustHex(t, curveOrderHex), true},
		{"N+1", scalarBytes(new(big.Int).Add(n, one)), true},
		{"all ones", bytes.Repeat([]byte{0xFF}, 32), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := PrivateKeyFromBytes(tt.in)
			if tt.wantErr {
				if err == nil || k != nil {
					t.Fatalf("PrivateKeyFromBytes = %v, %v; want nil and an error", k, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("PrivateKeyFromBytes: %v", err)
			}
			if len(k.Bytes()) != PrivateKeySize {
				t.Errorf("Bytes is %d bytes", len(k.Bytes()))
			}
			if _, err := ParseDeviceID(k.DeviceID().String()); err != nil {
				t.Errorf("device ID does not parse: %v", err)
			}
		})
	}
}

func TestDeviceIDText(t *testing.T) {
	for i := range 20 {
		id := mustGenerate(t).DeviceID()
		s := id.String()
		if !strings.HasPrefix(s, DeviceIDPrefix+"1") {
			t.Fatalf("String = %q, want prefix bmdev1", s)
		}
		if s != strings.ToLower(s) {
			t.Fatalf("String = %q, want lowercase", s)
		}
		if len(s) != 64 {
			t.Fatalf("String = %q is %d chars, want 64", s, len(s))
		}
		back, err := ParseDeviceID(s)
		if err != nil || back != id {
			t.Fatalf("ParseDeviceID(%q) = %s, %v; want %s", s, back, err, id)
		}
		upper, err := ParseDeviceID(strings.ToUpper(s))
		if err != nil || upper != id {
			t.Fatalf("ParseDeviceID(upper %d) = %s, %v; want %s", i, upper, err, id)
		}
		if id.Hex() != hex.EncodeToString(id[:]) {
			t.Fatalf("Hex = %s", id.Hex())
		}

		txt, err := id.MarshalText()
		if err != nil || string(txt) != s {
			t.Fatalf("MarshalText = %q, %v; want %q", txt, err, s)
		}
		var un DeviceID
		if err := un.UnmarshalText(txt); err != nil || un != id {
			t.Fatalf("UnmarshalText = %s, %v; want %s", un, err, id)
		}
	}
}

func TestDeviceIDJSON(t *testing.T) {
	type doc struct {
		ID    DeviceID         `json:"id"`
		Peers map[DeviceID]int `json:"peers"`
	}
	a, b := mustGenerate(t).DeviceID(), mustGenerate(t).DeviceID()
	in := doc{ID: a, Peers: map[DeviceID]int{a: 1, b: 2}}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if !bytes.Contains(data, []byte(`"id":"`+a.String()+`"`)) {
		t.Fatalf("JSON %s does not hold the bech32 ID", data)
	}
	var out doc
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if out.ID != a || len(out.Peers) != 2 || out.Peers[a] != 1 || out.Peers[b] != 2 {
		t.Fatalf("round trip = %+v, want %+v", out, in)
	}

	bad := []struct {
		name string
		json string
	}{
		{"hex not bech32", `{"id":"` + a.Hex() + `"}`},
		{"wrong prefix", `{"id":"` + encodeID(t, "npub", a[:], false) + `"}`},
		{"empty string", `{"id":""}`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			var d doc
			err := json.Unmarshal([]byte(tt.json), &d)
			if !errors.Is(err, ErrBadDeviceID) {
				t.Fatalf("Unmarshal = %v, want ErrBadDeviceID", err)
			}
		})
	}
}

func TestParseDeviceIDErrors(t *testing.T) {
	id := mustGenerate(t).DeviceID()
	valid := id.String()

	// One data character changed (to another valid charset character).
	pos := len(DeviceIDPrefix) + 10
	repl := byte('q')
	if valid[pos] == 'q' {
		repl = 'p'
	}
	oneChar := valid[:pos] + string(repl) + valid[pos+1:]
	// Two adjacent characters swapped.
	swapPos := len(DeviceIDPrefix) + 20
	for valid[swapPos] == valid[swapPos+1] {
		swapPos++
	}
	swapped := valid[:swapPos] + string(valid[swapPos+1]) + string(valid[swapPos]) + valid[swapPos+2:]
	// Mixed case is invalid bech32.
	mixed := strings.ToUpper(valid[:3]) + valid[3:]
	// 32 bytes of data with non-zero padding bits in the last 5-bit group.
	conv, err := bech32.ConvertBits(id[:], 8, 5, true)
	if err != nil {
		t.Fatal(err)
	}
	conv[len(conv)-1] |= 1
	badPadding, err := bech32.Encode(DeviceIDPrefix, conv)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		in   string
	}{
		{"one character changed", oneChar},
		{"two characters swapped", swapped},
		{"last character changed", valid[:len(valid)-1] + map[bool]string{true: "p", false: "q"}[valid[len(valid)-1] == 'q']},
		{"mixed case", mixed},
		{"wrong prefix npub", encodeID(t, "npub", id[:], false)},
		{"prefix bmdevx", encodeID(t, "bmdevx", id[:], false)},
		{"31 bytes of data", encodeID(t, DeviceIDPrefix, id[:31], false)},
		{"33 bytes of data", encodeID(t, DeviceIDPrefix, append(id[:], 0), false)},
		{"no data", encodeID(t, DeviceIDPrefix, nil, false)},
		{"non-zero padding bits", badPadding},
		{"x not on curve", encodeID(t, DeviceIDPrefix, mustHex(t, notOnCurveHex), false)},
		{"x above field size", encodeID(t, DeviceIDPrefix, mustHex(t, aboveFieldHex), false)},
		{"zero x", encodeID(t, DeviceIDPrefix, make([]byte, 32), false)},
		{"empty string", ""},
		{"prefix only", "bmdev1"},
		{"garbage", "not a device id"},
		{"invalid charset character b", valid[:pos] + "b" + valid[pos+1:]},
		{"no separator", strings.Replace(valid, "1", "", 1)},
		{"hex form", id.Hex()},
		{"leading space", " " + valid},
		{"trailing newline", valid + "\n"},
		{"too long", valid + strings.Repeat("q", 40)},
		{"non-ASCII", valid[:pos] + "é" + valid[pos+1:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDeviceID(tt.in)
			if !errors.Is(err, ErrBadDeviceID) {
				t.Fatalf("ParseDeviceID(%q) = %s, %v; want ErrBadDeviceID", tt.in, got, err)
			}
			if got != (DeviceID{}) {
				t.Errorf("ParseDeviceID returned non-zero ID %s with an error", got)
			}
			var u DeviceID
			if err := u.UnmarshalText([]byte(tt.in)); !errors.Is(err, ErrBadDeviceID) {
				t.Errorf("UnmarshalText = %v, want ErrBadDeviceID", err)
			}
			if u != (DeviceID{}) {
				t.Errorf("UnmarshalText modified the ID on error: %s", u)
			}
		})
	}
}

func FuzzParseDeviceID(f *testing.F) {
	id := DeviceID(mustHex(f, "1b84c5567b126440995d3ed5aaba0565d71e1834604819ff9c17f5e9d5dd078f"))
	valid := id.String()
	f.Add(valid)
	f.Add(strings.ToUpper(valid))
	f.Add(strings.ToUpper(valid[:3]) + valid[3:])
	f.Add(valid[:len(valid)-1] + "q")
	f.Add(encodeID(f, "npub", id[:], false))
	f.Add(encodeID(f, DeviceIDPrefix, id[:31], false))
	f.Add(encodeID(f, DeviceIDPrefix, mustHex(f, notOnCurveHex), false))
	f.Add(encodeID(f, DeviceIDPrefix, mustHex(f, aboveFieldHex), false))
	f.Add("")
	f.Add("bmdev1")
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseDeviceID(s)
		if err != nil {
			if !errors.Is(err, ErrBadDeviceID) {
				t.Fatalf("ParseDeviceID(%q) error %v does not wrap ErrBadDeviceID", s, err)
			}
			if got != (DeviceID{}) {
				t.Fatalf("ParseDeviceID(%q) returned %s with an error", s, got)
			}
			return
		}
		// bech32 is case-insensitive but never mixed-case, so the only
		// accepted spellings of an ID are its lowercase and uppercase forms.
		if str := got.String(); str != strings.ToLower(s) {
			t.Fatalf("ParseDeviceID(%q).String() = %q, want the lowercased input", s, str)
		}
		if _, err := got.ParsePublicKey(); err != nil {
			t.Fatalf("ParseDeviceID(%q) accepted a key that does not parse: %v", s, err)
		}
	})
}

// TestVerifyAgreesWithBtcec checks the point-based BIP-340 verification
// against btcec's schnorr.Verify on valid signatures and on signatures,
// messages and keys with single bits flipped.
func TestVerifyAgreesWithBtcec(t *testing.T) {
	rng := mathrand.New(mathrand.NewPCG(1, 2))
	for i := range 300 {
		key, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		var msg [32]byte
		for j := range msg {
			msg[j] = byte(rng.Uint32())
		}
		sig, err := key.SignHash(msg)
		if err != nil {
			t.Fatal(err)
		}
		id := key.DeviceID()
		switch i % 4 {
		case 1:
			sig[rng.IntN(len(sig))] ^= 1 << rng.IntN(8)
		case 2:
			msg[rng.IntN(len(msg))] ^= 1 << rng.IntN(8)
		case 3:
			id[rng.IntN(len(id))] ^= 1 << rng.IntN(8)
		}
		ours := VerifyBIP340(id, msg, sig) == nil
		theirs := false
		if pk, err := schnorr.ParsePubKey(id[:]); err == nil {
			if s, err := schnorr.ParseSignature(sig[:]); err == nil {
				theirs = s.Verify(msg[:], pk)
			}
		}
		if ours != theirs {
			t.Fatalf("case %d: VerifyBIP340 = %v, btcec = %v", i, ours, theirs)
		}
		if i%4 == 0 && !ours {
			t.Fatalf("case %d: a valid signature did not verify", i)
		}
	}
}

package gossip

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"
	"time"

	"github.com/bitmesh/bitmesh/identity"
)

// Wire limits. See docs/PROTOCOL.md.
const (
	// Version is the only envelope version this package encodes or accepts.
	Version = 1
	// MaxTopicLen bounds the topic field.
	MaxTopicLen = 128
	// MaxEnvelopeSize bounds a whole encoded envelope; it fits GossipSub's
	// default 1 MiB message limit with room for the RPC framing.
	MaxEnvelopeSize = 1<<20 - 1024
	// MaxPayloadSize is the largest payload that fits MaxEnvelopeSize with the
	// longest topic.
	MaxPayloadSize = MaxEnvelopeSize - fixedSize - MaxTopicLen
	// MinEnvelopeSize is the size of an envelope with a one-byte topic and an
	// empty payload.
	MinEnvelopeSize = fixedSize + 1

	// maxTimeMillis bounds timestamps so they convert to time.Time exactly.
	maxTimeMillis = 1 << 62

	// version+network+time+seq+sender+topiclen+payloadlen+target+nonce+sig
	fixedSize = 1 + 4 + 8 + 8 + 32 + 1 + 4 + 1 + 8 + identity.SignatureSize
)

// Network is a mesh's 4-byte magic: the first four bytes of the tagged hash
// of its name. Meshes with different names never accept each other's
// envelopes, as Bitcoin's networks never accept each other's messages.
type Network [4]byte

// NetworkFromName derives the magic for a network name.
func NetworkFromName(name string) Network {
	h := identity.DomainNetwork.Hash([]byte(name))
	var n Network
	copy(n[:], h[:4])
	return n
}

func (n Network) String() string { return hex.EncodeToString(n[:]) }

// ID identifies an envelope: the tagged hash of its encoding without the
// signature. It is GossipSub's message ID, the seen-cache key, the signed
// message and the proof-of-work hash.
type ID [32]byte

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// LeadingZeroBits returns the number of leading zero bits of id, its
// proof-of-work difficulty.
func (id ID) LeadingZeroBits() int {
	n := 0
	for i := 0; i < len(id); i += 8 {
		w := binary.BigEndian.Uint64(id[i:])
		if w != 0 {
			return n + bits.LeadingZeros64(w)
		}
		n += 64
	}
	return n
}

// Envelope is a signed mesh message. The zero value is not valid; build one
// with fields set and call Seal.
type Envelope struct {
	Network   Network
	Time      time.Time         // encoded as Unix milliseconds
	Seq       uint64            // per-sender sequence number
	Sender    identity.DeviceID // BIP-340 x-only key
	Topic     string            // 1..MaxTopicLen bytes of printable ASCII (0x21-0x7e)
	Payload   []byte            // after Decode, aliases the input
	PoWTarget uint8             // committed difficulty in leading zero bits of the ID
	PoWNonce  uint64
	Signature identity.Signature
}

// HashUnsigned returns the envelope ID of an encoding without its signature:
// identity.DomainEnvelope.Hash(unsigned).
func HashUnsigned(unsigned []byte) ID {
	h := identity.DomainEnvelope.NewHash()
	h.Write(unsigned)
	var id ID
	h.Sum(id[:0])
	return id
}

// MessageID returns the ID of an encoded envelope for GossipSub's message ID
// function. It never fails: for input too short to hold a signature it hashes
// the whole input (such input is rejected by validation anyway).
func MessageID(raw []byte) ID {
	if len(raw) < identity.SignatureSize {
		return HashUnsigned(raw)
	}
	return HashUnsigned(raw[:len(raw)-identity.SignatureSize])
}

// checkFields reports the first field that cannot be encoded.
func (e *Envelope) checkFields() error {
	if len(e.Topic) == 0 || len(e.Topic) > MaxTopicLen {
		return fmt.Errorf("gossip: topic length %d outside 1..%d", len(e.Topic), MaxTopicLen)
	}
	if i := invalidTopicByte(e.Topic); i >= 0 {
		return fmt.Errorf("gossip: topic byte %d (0x%02x) is not printable ASCII", i, e.Topic[i])
	}
	if len(e.Payload) > MaxPayloadSize {
		return fmt.Errorf("gossip: payload of %d bytes exceeds %d", len(e.Payload), MaxPayloadSize)
	}
	if ms := e.Time.UnixMilli(); ms < 0 || ms > maxTimeMillis {
		return fmt.Errorf("gossip: time %v outside the encodable range", e.Time)
	}
	return nil
}

// ValidTopic reports whether s can be an envelope topic.
func ValidTopic(s string) error {
	e := Envelope{Topic: s, Time: time.UnixMilli(0)}
	return e.checkFields()
}

func invalidTopicByte(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return i
		}
	}
	return -1
}

// AppendUnsigned appends the encoding of every field but the signature.
func (e *Envelope) AppendUnsigned(b []byte) ([]byte, error) {
	if err := e.checkFields(); err != nil {
		return b, err
	}
	b = append(b, Version)
	b = append(b, e.Network[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixMilli()))
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = append(b, e.Sender[:]...)
	b = append(b, byte(len(e.Topic)))
	b = append(b, e.Topic...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Payload)))
	b = append(b, e.Payload...)
	b = append(b, e.PoWTarget)
	b = binary.BigEndian.AppendUint64(b, e.PoWNonce)
	return b, nil
}

// EncodedSize returns the length of the envelope's encoding.
func (e *Envelope) EncodedSize() int { return fixedSize + len(e.Topic) + len(e.Payload) }

// Encode returns the canonical encoding, signature included.
func (e *Envelope) Encode() ([]byte, error) {
	b, err := e.AppendUnsigned(make([]byte, 0, e.EncodedSize()))
	if err != nil {
		return nil, err
	}
	return append(b, e.Signature[:]...), nil
}

// ID computes the envelope ID.
func (e *Envelope) ID() (ID, error) {
	b, err := e.AppendUnsigned(make([]byte, 0, e.EncodedSize()))
	if err != nil {
		return ID{}, err
	}
	return HashUnsigned(b), nil
}

// Seal sets Sender to key's device ID, signs the envelope ID with key and
// returns the encoding and the ID. Any proof of work must already be in
// PoWTarget and PoWNonce: they are inside the signed ID.
func (e *Envelope) Seal(key *identity.PrivateKey) ([]byte, ID, error) {
	e.Sender = key.DeviceID()
	b, err := e.AppendUnsigned(make([]byte, 0, e.EncodedSize()))
	if err != nil {
		return nil, ID{}, err
	}
	id := HashUnsigned(b)
	if got := id.LeadingZeroBits(); got < int(e.PoWTarget) {
		// Mining with another Sender, or none, yields a different ID.
		return nil, ID{}, fmt.Errorf("%w: %d leading zero bits, committed target %d (mine with Sender set)", ErrInsufficientWork, got, e.PoWTarget)
	}
	sig, err := key.SignHash(id)
	if err != nil {
		return nil, ID{}, err
	}
	e.Signature = sig
	return append(b, sig[:]...), id, nil
}

// Decode parses a canonical envelope encoding. It checks every length before
// using it, rejects trailing bytes and non-canonical values, and returns a
// *DecodeError wrapping ErrMalformed or ErrOversize. Payload aliases raw. It
// does not verify the signature, the network or the proof of work.
func Decode(raw []byte) (*Envelope, error) {
	if len(raw) > MaxEnvelopeSize {
		return nil, oversize("envelope", 0, "%d bytes exceeds %d", len(raw), MaxEnvelopeSize)
	}
	if len(raw) < MinEnvelopeSize {
		return nil, malformed("envelope", 0, "%d bytes is shorter than the minimum %d", len(raw), MinEnvelopeSize)
	}
	if raw[0] != Version {
		return nil, malformed("version", 0, "unsupported version %d", raw[0])
	}
	e := &Envelope{}
	off := 1
	copy(e.Network[:], raw[off:])
	off += 4
	ms := binary.BigEndian.Uint64(raw[off:])
	if ms > maxTimeMillis {
		return nil, malformed("time", off, "%d ms is out of range", ms)
	}
	e.Time = time.UnixMilli(int64(ms))
	off += 8
	e.Seq = binary.BigEndian.Uint64(raw[off:])
	off += 8
	copy(e.Sender[:], raw[off:])
	off += 32
	tl := int(raw[off])
	if tl == 0 {
		return nil, malformed("topic", off, "empty topic")
	}
	if tl > MaxTopicLen {
		return nil, oversize("topic", off, "length %d exceeds %d", tl, MaxTopicLen)
	}
	off++
	// The rest must hold the topic plus the fixed tail.
	tail := 4 + 1 + 8 + identity.SignatureSize
	if len(raw)-off < tl+tail {
		return nil, malformed("topic", off, "length %d overruns the envelope", tl)
	}
	topic := raw[off : off+tl]
	if i := invalidTopicByte(string(topic)); i >= 0 {
		return nil, malformed("topic", off+i, "byte 0x%02x is not printable ASCII", topic[i])
	}
	e.Topic = string(topic)
	off += tl
	pl := binary.BigEndian.Uint32(raw[off:])
	if pl > MaxPayloadSize {
		return nil, oversize("payload", off, "length %d exceeds %d", pl, MaxPayloadSize)
	}
	off += 4
	if uint64(len(raw)-off) != uint64(pl)+uint64(tail-4) {
		return nil, malformed("payload", off-4, "length %d does not match the %d bytes left", pl, len(raw)-off-(tail-4))
	}
	e.Payload = raw[off : off+int(pl) : off+int(pl)]
	off += int(pl)
	e.PoWTarget = raw[off]
	off++
	e.PoWNonce = binary.BigEndian.Uint64(raw[off:])
	off += 8
	copy(e.Signature[:], raw[off:])
	return e, nil
}

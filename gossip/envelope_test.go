package gossip

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/identity"
)

// TestEnvelopeRoundTrip seals thousands of random envelopes and checks that
// the encoding is a bijection on them: Decode inverts Encode, re-encoding is
// byte-identical, and the ID is the same however it is computed.
func TestEnvelopeRoundTrip(t *testing.T) {
	// 2000 envelopes in two seeded halves that run in parallel: sealing
	// dominates, and it is slow under -race.
	const n = 1000
	keys := []*identity.PrivateKey{testKey(t, 1), testKey(t, 2), testKey(t, 3), testKey(t, 0x7f)}
	for half := range byte(2) {
		t.Run(fmt.Sprintf("seed%d", half), func(t *testing.T) {
			t.Parallel()
			roundTrip(t, n, [32]byte{'b', 'i', 't', 'm', 'e', 's', 'h', half}, keys)
		})
	}
}

func roundTrip(t *testing.T, n int, seed [32]byte, keys []*identity.PrivateKey) {
	src := rand.NewChaCha8(seed)
	rng := rand.New(src)
	for i := range n {
		e := randomEnvelope(rng, src)
		key := keys[i%len(keys)]
		e.PoWTarget = 0 // Seal refuses unmet targets; the codec round trip is the point here
		raw, id, err := e.Seal(key)
		if err != nil {
			t.Fatalf("#%d: Seal: %v", i, err)
		}
		if len(raw) != e.EncodedSize() {
			t.Fatalf("#%d: encoding is %d bytes, EncodedSize says %d", i, len(raw), e.EncodedSize())
		}
		if e.Sender != key.DeviceID() {
			t.Fatalf("#%d: Seal set Sender %s, want %s", i, e.Sender, key.DeviceID())
		}
		got, err := Decode(raw)
		if err != nil {
			t.Fatalf("#%d: Decode(Encode(e)): %v", i, err)
		}
		if diff := envelopeDiff(&e, got); diff != "" {
			t.Fatalf("#%d: Decode(Encode(e)) differs: %s", i, diff)
		}
		again, err := got.Encode()
		if err != nil {
			t.Fatalf("#%d: re-Encode: %v", i, err)
		}
		if !bytes.Equal(again, raw) {
			t.Fatalf("#%d: re-encoding is not byte-identical", i)
		}
		enc, err := e.Encode()
		if err != nil || !bytes.Equal(enc, raw) {
			t.Fatalf("#%d: Encode after Seal differs from Seal's bytes (err %v)", i, err)
		}
		if mid := MessageID(raw); mid != id {
			t.Fatalf("#%d: MessageID(raw) = %s, Seal returned %s", i, mid, id)
		}
		if gid, err := got.ID(); err != nil || gid != id {
			t.Fatalf("#%d: decoded ID() = %s, %v; want %s", i, gid, err, id)
		}
		if i%50 == 0 && identity.VerifyBIP340(e.Sender, id, e.Signature) != nil {
			t.Fatalf("#%d: signature does not verify", i)
		}
	}
}

// randomEnvelope fills every field at random within the encodable ranges.
func randomEnvelope(rng *rand.Rand, src *rand.ChaCha8) Envelope {
	topic := make([]byte, 1+rng.IntN(MaxTopicLen))
	for j := range topic {
		topic[j] = byte(0x21 + rng.IntN(0x7e-0x21+1))
	}
	payload := make([]byte, rng.IntN(4097))
	src.Read(payload)
	var network Network
	binary.BigEndian.PutUint32(network[:], rng.Uint32())
	var ms int64
	switch rng.IntN(4) {
	case 0:
		ms = 0
	case 1:
		ms = maxTimeMillis
	default:
		ms = rng.Int64N(maxTimeMillis + 1)
	}
	return Envelope{
		Network:   network,
		Time:      time.UnixMilli(ms),
		Seq:       rng.Uint64(),
		Topic:     string(topic),
		Payload:   payload,
		PoWTarget: uint8(rng.Uint32()),
		PoWNonce:  rng.Uint64(),
	}
}

// envelopeDiff names the first field in which a and b differ.
func envelopeDiff(a, b *Envelope) string {
	switch {
	case a.Network != b.Network:
		return "Network"
	case !a.Time.Equal(b.Time):
		return "Time " + a.Time.String() + " vs " + b.Time.String()
	case a.Seq != b.Seq:
		return "Seq"
	case a.Sender != b.Sender:
		return "Sender"
	case a.Topic != b.Topic:
		return "Topic"
	case !bytes.Equal(a.Payload, b.Payload):
		return "Payload"
	case a.PoWTarget != b.PoWTarget:
		return "PoWTarget"
	case a.PoWNonce != b.PoWNonce:
		return "PoWNonce"
	case a.Signature != b.Signature:
		return "Signature"
	}
	return ""
}

// Field offsets of an encoding, for the decode table.
const (
	offVersion  = 0
	offNetwork  = 1
	offTime     = 5
	offSeq      = 13
	offSender   = 21
	offTopicLen = 53
	offTopic    = 54
)

func TestDecodeErrors(t *testing.T) {
	key := testKey(t, 1)
	valid, env := seal(t, key, nil)
	pl := payloadOffset(env) - 4 // offset of the payload length

	with := func(mut func(b []byte) []byte) []byte { return mut(bytes.Clone(valid)) }
	put32 := func(off int, v uint32) []byte {
		return with(func(b []byte) []byte { binary.BigEndian.PutUint32(b[off:], v); return b })
	}
	put64 := func(off int, v uint64) []byte {
		return with(func(b []byte) []byte { binary.BigEndian.PutUint64(b[off:], v); return b })
	}
	setByte := func(off int, v byte) []byte {
		return with(func(b []byte) []byte { b[off] = v; return b })
	}

	// A valid envelope of exactly MaxEnvelopeSize bytes: longest topic,
	// largest payload.
	maxEnv := Envelope{
		Network: testNetwork, Time: testNow,
		Topic:   strings.Repeat("x", MaxTopicLen),
		Payload: make([]byte, MaxPayloadSize),
	}
	maxRaw, _, err := maxEnv.Seal(key)
	if err != nil {
		t.Fatal(err)
	}
	if len(maxRaw) != MaxEnvelopeSize {
		t.Fatalf("largest envelope is %d bytes, want MaxEnvelopeSize %d", len(maxRaw), MaxEnvelopeSize)
	}

	tests := []struct {
		name      string
		raw       []byte
		wantErr   error // nil: must decode
		wantField string
		wantOff   int // checked when wantField is set
	}{
		{name: "valid", raw: valid},
		{name: "largest valid envelope", raw: maxRaw},
		{name: "time exactly 1<<62", raw: put64(offTime, maxTimeMillis)},
		{name: "topic byte 0x21", raw: setByte(offTopic, 0x21)},
		{name: "topic byte 0x7e", raw: setByte(offTopic, 0x7e)},
		{name: "pow target 255", raw: setByte(len(valid)-identity.SignatureSize-9, 0xff)},

		{name: "nil", raw: nil, wantErr: ErrMalformed, wantField: "envelope", wantOff: 0},
		{name: "empty", raw: []byte{}, wantErr: ErrMalformed, wantField: "envelope", wantOff: 0},
		{name: "one byte", raw: []byte{Version}, wantErr: ErrMalformed, wantField: "envelope", wantOff: 0},
		{name: "one byte short of minimum", raw: make([]byte, MinEnvelopeSize-1), wantErr: ErrMalformed, wantField: "envelope"},
		{name: "trailing byte", raw: append(bytes.Clone(valid), 0), wantErr: ErrMalformed, wantField: "payload", wantOff: pl},
		{name: "version 0", raw: setByte(offVersion, 0), wantErr: ErrMalformed, wantField: "version", wantOff: 0},
		{name: "version 2", raw: setByte(offVersion, 2), wantErr: ErrMalformed, wantField: "version", wantOff: 0},
		{name: "version 255", raw: setByte(offVersion, 255), wantErr: ErrMalformed, wantField: "version", wantOff: 0},
		{name: "time 1<<62+1", raw: put64(offTime, maxTimeMillis+1), wantErr: ErrMalformed, wantField: "time", wantOff: offTime},
		{name: "time all ones", raw: put64(offTime, ^uint64(0)), wantErr: ErrMalformed, wantField: "time", wantOff: offTime},
		{name: "topic length 0", raw: setByte(offTopicLen, 0), wantErr: ErrMalformed, wantField: "topic", wantOff: offTopicLen},
		{name: "topic length 129", raw: setByte(offTopicLen, MaxTopicLen+1), wantErr: ErrOversize, wantField: "topic", wantOff: offTopicLen},
		{name: "topic length 255", raw: setByte(offTopicLen, 255), wantErr: ErrOversize, wantField: "topic", wantOff: offTopicLen},
		{name: "topic length overruns envelope", raw: setByte(offTopicLen, MaxTopicLen), wantErr: ErrMalformed, wantField: "topic", wantOff: offTopic},
		{name: "topic with space", raw: setByte(offTopic+3, ' '), wantErr: ErrMalformed, wantField: "topic", wantOff: offTopic + 3},
		{name: "topic with 0x7f", raw: setByte(offTopic, 0x7f), wantErr: ErrMalformed, wantField: "topic", wantOff: offTopic},
		{name: "topic with NUL", raw: setByte(offTopic+1, 0), wantErr: ErrMalformed, wantField: "topic", wantOff: offTopic + 1},
		{name: "topic with non-ASCII byte", raw: setByte(offTopic+2, 0xc3), wantErr: ErrMalformed, wantField: "topic", wantOff: offTopic + 2},
		{name: "payload length MaxPayloadSize+1", raw: put32(pl, MaxPayloadSize+1), wantErr: ErrOversize, wantField: "payload", wantOff: pl},
		{name: "payload length all ones", raw: put32(pl, ^uint32(0)), wantErr: ErrOversize, wantField: "payload", wantOff: pl},
		{name: "payload length +1", raw: put32(pl, uint32(len(env.Payload)+1)), wantErr: ErrMalformed, wantField: "payload", wantOff: pl},
		{name: "payload length -1", raw: put32(pl, uint32(len(env.Payload)-1)), wantErr: ErrMalformed, wantField: "payload", wantOff: pl},
		{name: "envelope MaxEnvelopeSize+1", raw: append(bytes.Clone(maxRaw), 0), wantErr: ErrOversize, wantField: "envelope", wantOff: 0},
		{name: "garbage of MaxEnvelopeSize+1", raw: make([]byte, MaxEnvelopeSize+1), wantErr: ErrOversize, wantField: "envelope", wantOff: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Decode(tt.raw)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				again, err := e.Encode()
				if err != nil || !bytes.Equal(again, tt.raw) {
					t.Fatalf("re-Encode differs from input (err %v)", err)
				}
				return
			}
			checkDecodeError(t, e, err, tt.wantErr)
			var de *DecodeError
			errors.As(err, &de)
			if tt.wantField != "" && (de.Field != tt.wantField || de.Offset != tt.wantOff) {
				t.Errorf("error at %s offset %d, want %s offset %d (%v)", de.Field, de.Offset, tt.wantField, tt.wantOff, err)
			}
		})
	}
}

// checkDecodeError asserts that a failed Decode returned no envelope and a
// *DecodeError wrapping want and not the other decode sentinel.
func checkDecodeError(t *testing.T, e *Envelope, err, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("Decode succeeded, want %v", want)
	}
	if e != nil {
		t.Errorf("Decode returned an envelope with error %v", err)
	}
	if !errors.Is(err, want) {
		t.Errorf("error %v does not wrap %v", err, want)
	}
	other := ErrOversize
	if want == ErrOversize {
		other = ErrMalformed
	}
	if errors.Is(err, other) {
		t.Errorf("error %v wraps both decode sentinels", err)
	}
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
	}
	if de.Field == "" || de.Reason == "" || !strings.Contains(de.Error(), de.Field) {
		t.Errorf("DecodeError lacks field or reason: %+v", de)
	}
}

// TestDecodeTruncated cuts a valid envelope at every length.
func TestDecodeTruncated(t *testing.T) {
	for _, payload := range []string{"", "x", `{"celsius":21.5}`} {
		raw, _ := seal(t, testKey(t, 1), func(e *Envelope) { e.Payload = []byte(payload) })
		for n := range len(raw) {
			e, err := Decode(raw[:n])
			if err == nil {
				t.Fatalf("payload %q: Decode of the first %d of %d bytes succeeded", payload, n, len(raw))
			}
			checkDecodeError(t, e, err, ErrMalformed)
		}
	}
}

// TestDecodeAliasesPayload documents that the payload aliases the input and
// cannot be appended to in place.
func TestDecodeAliasesPayload(t *testing.T) {
	raw, env := seal(t, testKey(t, 1), nil)
	e, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if cap(e.Payload) != len(e.Payload) {
		t.Errorf("payload capacity %d exceeds its length %d: appends would overwrite the input", cap(e.Payload), len(e.Payload))
	}
	raw[payloadOffset(env)] ^= 1
	if e.Payload[0] != raw[payloadOffset(env)] {
		t.Error("payload does not alias the input")
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Envelope)
		wantErr string // substring of the error; "" means success
	}{
		{name: "valid", mutate: func(*Envelope) {}},
		{name: "topic of MaxTopicLen", mutate: func(e *Envelope) { e.Topic = strings.Repeat("a", MaxTopicLen) }},
		{name: "payload of MaxPayloadSize", mutate: func(e *Envelope) { e.Payload = make([]byte, MaxPayloadSize) }},
		{name: "time zero", mutate: func(e *Envelope) { e.Time = time.UnixMilli(0) }},
		{name: "time 1<<62 ms", mutate: func(e *Envelope) { e.Time = time.UnixMilli(maxTimeMillis) }},

		{name: "empty topic", mutate: func(e *Envelope) { e.Topic = "" }, wantErr: "topic length"},
		{name: "topic of 129 bytes", mutate: func(e *Envelope) { e.Topic = strings.Repeat("a", MaxTopicLen+1) }, wantErr: "topic length"},
		{name: "topic with space", mutate: func(e *Envelope) { e.Topic = "sensors temp" }, wantErr: "not printable"},
		{name: "topic with 0x7f", mutate: func(e *Envelope) { e.Topic = "a\x7f" }, wantErr: "not printable"},
		{name: "topic with newline", mutate: func(e *Envelope) { e.Topic = "a\n" }, wantErr: "not printable"},
		{name: "topic with non-ASCII", mutate: func(e *Envelope) { e.Topic = "température" }, wantErr: "not printable"},
		{name: "payload of MaxPayloadSize+1", mutate: func(e *Envelope) { e.Payload = make([]byte, MaxPayloadSize+1) }, wantErr: "payload"},
		{name: "time before 1970", mutate: func(e *Envelope) { e.Time = time.UnixMilli(-1) }, wantErr: "time"},
		{name: "zero time", mutate: func(e *Envelope) { e.Time = time.Time{} }, wantErr: "time"},
		{name: "time past 1<<62 ms", mutate: func(e *Envelope) { e.Time = time.UnixMilli(maxTimeMillis + 1) }, wantErr: "time"},
	}
	key := testKey(t, 1)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := baseEnvelope()
			tt.mutate(&e)
			raw, encErr := e.Encode()
			_, idErr := e.ID()
			prefix := []byte("prefix")
			out, appErr := e.AppendUnsigned(prefix)
			sealed, _, sealErr := e.Seal(key)
			if tt.wantErr == "" {
				for _, err := range []error{encErr, idErr, appErr, sealErr} {
					if err != nil {
						t.Fatalf("unexpected error: %v", err)
					}
				}
				if len(raw) != e.EncodedSize() || len(sealed) != e.EncodedSize() {
					t.Errorf("encoded %d/%d bytes, EncodedSize %d", len(raw), len(sealed), e.EncodedSize())
				}
				return
			}
			for what, err := range map[string]error{"Encode": encErr, "ID": idErr, "AppendUnsigned": appErr, "Seal": sealErr} {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("%s error %v, want one mentioning %q", what, err, tt.wantErr)
				}
			}
			if raw != nil || sealed != nil {
				t.Error("Encode or Seal returned bytes with an error")
			}
			if !bytes.Equal(out, prefix) {
				t.Errorf("AppendUnsigned changed its buffer on error: %q", out)
			}
			if e.Signature != (identity.Signature{}) {
				t.Error("Seal signed an unencodable envelope")
			}
			if strings.HasPrefix(tt.name, "topic") || tt.name == "empty topic" {
				if ValidTopic(e.Topic) == nil {
					t.Errorf("ValidTopic(%q) = nil", e.Topic)
				}
			}
		})
	}
}

func TestValidTopic(t *testing.T) {
	tests := []struct {
		topic string
		ok    bool
	}{
		{"t", true},
		{"sensors/temp", true},
		{"!~", true},
		{strings.Repeat("z", MaxTopicLen), true},
		{"", false},
		{strings.Repeat("z", MaxTopicLen+1), false},
		{" ", false},
		{"a b", false},
		{"tab\t", false},
		{"\x7f", false},
		{"\x80", false},
		{"ü", false},
	}
	for _, tt := range tests {
		if err := ValidTopic(tt.topic); (err == nil) != tt.ok {
			t.Errorf("ValidTopic(%q) = %v, want ok=%v", tt.topic, err, tt.ok)
		}
	}
}

func TestLeadingZeroBits(t *testing.T) {
	id := func(prefix ...byte) ID {
		var x ID
		copy(x[:], prefix)
		return x
	}
	ones := id()
	for i := range ones {
		ones[i] = 0xff
	}
	tests := []struct {
		name string
		id   ID
		want int
	}{
		{"all zero", ID{}, 256},
		{"0x80 first", id(0x80), 0},
		{"all ones", ones, 0},
		{"0x40 first", id(0x40), 1},
		{"0x01 first", id(0x01), 7},
		{"0x00 0x01", id(0x00, 0x01), 15},
		{"0x00 0x80", id(0x00, 0x80), 8},
		{"7 zero bytes then 0x01", id(0, 0, 0, 0, 0, 0, 0, 0x01), 63},
		{"8 zero bytes then 0x80", id(0, 0, 0, 0, 0, 0, 0, 0, 0x80), 64},
		{"8 zero bytes then 0x01", id(0, 0, 0, 0, 0, 0, 0, 0, 0x01), 71},
		{"24 zero bytes then 0x01", id(append(make([]byte, 24), 0x01)...), 199},
		{"31 zero bytes then 0x01", id(append(make([]byte, 31), 0x01)...), 255},
		{"31 zero bytes then 0x80", id(append(make([]byte, 31), 0x80)...), 248},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.id.LeadingZeroBits(); got != tt.want {
				t.Errorf("LeadingZeroBits(%s) = %d, want %d", tt.id, got, tt.want)
			}
		})
	}
}

// taggedHash is BIP-340's tagged hash, written out independently of the
// identity package.
func taggedHash(tag string, msg []byte) [32]byte {
	t := sha256.Sum256([]byte(tag))
	return sha256.Sum256(append(append(t[:], t[:]...), msg...))
}

func TestNetworkFromName(t *testing.T) {
	names := []string{"", "bitmesh", "bitmesh-test", "bitmesh-test2", "Bitmesh", "greenhouse"}
	seen := map[Network]string{}
	for _, name := range names {
		n := NetworkFromName(name)
		if again := NetworkFromName(name); again != n {
			t.Errorf("NetworkFromName(%q) unstable: %s then %s", name, n, again)
		}
		h := taggedHash("bitmesh/network", []byte(name))
		if !bytes.Equal(n[:], h[:4]) {
			t.Errorf("NetworkFromName(%q) = %s, want the first 4 bytes of the tagged hash %x", name, n, h[:4])
		}
		if other, dup := seen[n]; dup {
			t.Errorf("NetworkFromName(%q) = NetworkFromName(%q) = %s", name, other, n)
		}
		seen[n] = name
		if s := n.String(); len(s) != 8 || strings.ToLower(s) != s {
			t.Errorf("Network.String() = %q, want 8 lowercase hex digits", s)
		}
	}
}

// TestIDIsTaggedHash checks the precomputed tag state against the definition.
func TestIDIsTaggedHash(t *testing.T) {
	for _, n := range []int{0, 1, 55, 56, 63, 64, 65, 200, 4096} {
		msg := bytes.Repeat([]byte{0xa5}, n)
		want := taggedHash("bitmesh/envelope", msg)
		if got := HashUnsigned(msg); got != ID(want) {
			t.Errorf("HashUnsigned(%d bytes) = %s, want %x", n, got, want)
		}
		if got := identity.DomainEnvelope.Hash(msg); got != want {
			t.Errorf("DomainEnvelope.Hash(%d bytes) = %x, want %x", n, got, want)
		}
	}
	raw, e := seal(t, testKey(t, 1), nil)
	want := taggedHash("bitmesh/envelope", raw[:len(raw)-identity.SignatureSize])
	if got := MessageID(raw); got != ID(want) {
		t.Errorf("MessageID = %s, want %x", got, want)
	}
	if got, _ := e.ID(); got != ID(want) {
		t.Errorf("ID() = %s, want %x", got, want)
	}
	// Input too short to hold a signature is hashed whole; from 64 bytes on
	// the last 64 are dropped.
	for n := range identity.SignatureSize + 2 {
		b := bytes.Repeat([]byte{7}, n)
		want := HashUnsigned(b)
		if n >= identity.SignatureSize {
			want = HashUnsigned(b[:n-identity.SignatureSize])
		}
		if got := MessageID(b); got != want {
			t.Errorf("MessageID(%d bytes) = %s, want %s", n, got, want)
		}
	}
	if MessageID(nil) != HashUnsigned(nil) {
		t.Error("MessageID(nil) is not the hash of the empty string")
	}
	if s := (ID{0xab}).String(); s != "ab"+strings.Repeat("0", 62) {
		t.Errorf("ID.String() = %q", s)
	}
}

// TestSignatureCoversEveryField: changing any signed field changes the ID, so
// the old signature no longer verifies.
func TestSignatureCoversEveryField(t *testing.T) {
	key := testKey(t, 1)
	_, sealed := seal(t, key, nil)
	base, _ := sealed.ID()
	mutations := map[string]func(*Envelope){
		"network": func(e *Envelope) { e.Network[3] ^= 1 },
		"time":    func(e *Envelope) { e.Time = e.Time.Add(time.Millisecond) },
		"seq":     func(e *Envelope) { e.Seq++ },
		"sender":  func(e *Envelope) { e.Sender = testKey(t, 2).DeviceID() },
		"topic":   func(e *Envelope) { e.Topic += "x" },
		"payload": func(e *Envelope) { e.Payload = append(bytes.Clone(e.Payload), 0) },
		"target":  func(e *Envelope) { e.PoWTarget++ },
		"nonce":   func(e *Envelope) { e.PoWNonce++ },
	}
	for name, mutate := range mutations {
		t.Run(name, func(t *testing.T) {
			e := *sealed
			mutate(&e)
			id, err := e.ID()
			if err != nil {
				t.Fatal(err)
			}
			if id == base {
				t.Fatal("ID unchanged")
			}
			if identity.VerifyBIP340(e.Sender, id, e.Signature) == nil {
				t.Fatal("old signature verifies the changed envelope")
			}
		})
	}
	// Sub-millisecond time is not encoded: it does not change the ID.
	e := *sealed
	e.Time = e.Time.Add(999 * time.Microsecond)
	if id, _ := e.ID(); id != base {
		t.Error("sub-millisecond time changed the ID")
	}
}

func TestSealRefusesUnmetProofOfWork(t *testing.T) {
	key := testKey(t, 1)
	e := baseEnvelope()
	e.PoWTarget = 8
	e.Sender = key.DeviceID() // mine with the Sender Seal will set
	mine(t, &e)
	if _, _, err := e.Seal(key); err != nil {
		t.Fatalf("Seal of a mined envelope: %v", err)
	}
	for { // find a nonce that misses the target
		e.PoWNonce++
		if id, _ := e.ID(); id.LeadingZeroBits() < 8 {
			break
		}
	}
	if _, _, err := e.Seal(key); !errors.Is(err, ErrInsufficientWork) {
		t.Fatalf("Seal of an unmined envelope: %v, want ErrInsufficientWork", err)
	}
}

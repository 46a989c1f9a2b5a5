package gossip

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/identity"
	"github.com/libp2p/go-libp2p/core/crypto"
)

var update = flag.Bool("update", false, "regenerate gossip/testdata/envelope-vectors.json")

const vectorsPath = "testdata/envelope-vectors.json"

// The JSON layout of the test vector file. Byte strings are lowercase hex;
// 64-bit unsigned integers are decimal strings (JSON numbers lose precision
// past 2^53 in many languages); times are Unix milliseconds.
type vectorFile struct {
	Comment   []string        `json:"comment"`
	Constants vectorConstants `json:"constants"`
	Keys      []vectorKey     `json:"keys"`
	Vectors   []vector        `json:"vectors"`
}

type vectorConstants struct {
	Version         int             `json:"version"`
	MaxTopicLen     int             `json:"max_topic_len"`
	MaxPayloadSize  int             `json:"max_payload_size"`
	MinEnvelopeSize int             `json:"min_envelope_size"`
	MaxEnvelopeSize int             `json:"max_envelope_size"`
	MaxTimeMillis   string          `json:"max_time_unix_ms"`
	Tags            []vectorTag     `json:"tags"`
	Validator       vectorValidator `json:"validator"`
}

type vectorTag struct {
	Tag     string `json:"tag"`
	TagHash string `json:"sha256_tag"`
	// EmptyHash is the tagged hash of the empty message.
	EmptyHash string `json:"tagged_hash_of_empty"`
}

type vectorValidator struct {
	MaxEnvelopeSize   int   `json:"max_envelope_size"`
	MaxAgeMillis      int64 `json:"max_age_ms"`
	MaxFutureSkewMill int64 `json:"max_future_skew_ms"`
	GraceMillis       int64 `json:"grace_ms"`
}

type vectorKey struct {
	SecretKey           string `json:"secret_key"`
	NormalisedSecretKey string `json:"normalised_secret_key"`
	XOnlyPublicKey      string `json:"x_only_public_key"`
	DeviceID            string `json:"device_id"`
	Libp2pPublicKey     string `json:"libp2p_public_key_protobuf"`
	PeerIDBytes         string `json:"peer_id_bytes"`
	PeerID              string `json:"peer_id"`
}

type vector struct {
	Description string `json:"description"`
	// SecretKey and AuxRand are set when Signature is the deterministic
	// BIP-340 signature of ID by that key with that auxiliary randomness.
	SecretKey string `json:"secret_key,omitempty"`
	AuxRand   string `json:"aux_rand,omitempty"`
	// NetworkName is the name of the network the envelope claims.
	NetworkName string `json:"network_name,omitempty"`
	// Fields, Unsigned, ID and Signature are set when Envelope decodes.
	Fields            *vectorFields `json:"fields,omitempty"`
	Unsigned          string        `json:"unsigned,omitempty"`
	ID                string        `json:"id,omitempty"`
	IDLeadingZeroBits *int          `json:"id_leading_zero_bits,omitempty"`
	Signature         string        `json:"signature,omitempty"`
	Envelope          string        `json:"envelope"`
	// PadTo, when set, makes the input envelope followed by zero bytes up
	// to PadTo bytes in all, so a vector can be over the size limit
	// without a megabyte of hex.
	PadTo           int            `json:"pad_to,omitempty"`
	Validate        vectorValidate `json:"validate"`
	ExpectedVerdict string         `json:"expected_verdict"`
	// ExpectedError names the gossip sentinel; "" for accept.
	ExpectedError string `json:"expected_error"`
}

type vectorFields struct {
	Version      int    `json:"version"`
	NetworkMagic string `json:"network_magic"`
	TimeUnixMs   int64  `json:"time_unix_ms"`
	Seq          string `json:"seq"`
	Sender       string `json:"sender"`
	Topic        string `json:"topic"`
	Payload      string `json:"payload"`
	PoWTarget    int    `json:"pow_target"`
	PoWNonce     string `json:"pow_nonce"`
}

type vectorValidate struct {
	NetworkName  string `json:"network_name"`
	NetworkMagic string `json:"network_magic"`
	Topic        string `json:"topic"`
	NowUnixMs    int64  `json:"now_unix_ms"`
}

// secp256k1N is the order of the secp256k1 group.
var secp256k1N, _ = new(big.Int).SetString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16)

var sentinelNames = map[string]error{
	"ErrMalformed":        ErrMalformed,
	"ErrOversize":         ErrOversize,
	"ErrWrongNetwork":     ErrWrongNetwork,
	"ErrStale":            ErrStale,
	"ErrFuture":           ErrFuture,
	"ErrInsufficientWork": ErrInsufficientWork,
	"ErrBadSignature":     ErrBadSignature,
	"ErrWrongTopic":       ErrWrongTopic,
}

func sentinelName(err error) string {
	for name, s := range sentinelNames {
		if errors.Is(err, s) {
			return name
		}
	}
	return ""
}

// Inputs of the generated vectors.
const (
	vecNetwork      = "bitmesh-vectors"
	vecOtherNetwork = "bitmesh-other"
	// BIP-340 test vector 1's secret key.
	vecKeyBIP340 = "b7e151628aed2a6abf7158809cf4f3c762e7160f38b4da56a784d9045190cfef"
	// and its x-only public key, from the BIP.
	vecKeyBIP340Pub = "dff1d77f2a671c5f36183726db2341be58feae1da2deced843240f7b502ba659"
	// BIP-340 test vector 3's secret key: its public key has an odd Y, so
	// bitmesh stores its negation.
	vecKeyOddY    = "0b432b2677937381aef05bb02a66ecd012773062cf3fa2549e44f58ed2401710"
	vecKeyOddYPub = "25d1dff95105f5253c4022f628a996ad3a0d95fbf21d468a1b33f8c160d8f517"
)

var (
	vecNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	// vecKeySeq is 0x01 0x02 ... 0x20.
	vecKeySeq = func() string {
		b := make([]byte, 32)
		for i := range b {
			b[i] = byte(i + 1)
		}
		return hex.EncodeToString(b)
	}()
)

func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func vecPrivateKey(tb testing.TB, secretHex string) *identity.PrivateKey {
	tb.Helper()
	k, err := identity.PrivateKeyFromBytes(mustHex(tb, secretHex))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// generateVectors builds the vector file. It is deterministic: keys are
// fixed, signatures use all-zero auxiliary randomness and nonces are mined
// from 0 upward.
func generateVectors(tb testing.TB) vectorFile {
	tb.Helper()
	cfg := DefaultValidatorConfig(NetworkFromName(vecNetwork))
	f := vectorFile{
		Comment: []string{
			"bitmesh envelope test vectors; see docs/PROTOCOL.md.",
			"Generated by `go test ./gossip -run TestEnvelopeVectors -update`; do not edit by hand.",
			"Byte strings are lowercase hex. 64-bit unsigned integers (seq, pow_nonce, max_time_unix_ms) are decimal strings. Times are Unix milliseconds.",
			"Signatures are BIP-340 over the 32-byte envelope ID with the given aux_rand (all zero), so they are deterministic.",
			"Each vector is validated with the validator policy in constants.validator, for validate.network_name, arriving on validate.topic, at validate.now_unix_ms.",
			"expected_error names the failure class: ErrMalformed, ErrOversize, ErrWrongNetwork, ErrWrongTopic, ErrStale, ErrFuture, ErrInsufficientWork or ErrBadSignature; empty for accept.",
			"Vectors without fields do not decode; vectors without secret_key carry a signature that was altered or made for other bytes.",
			"Where pad_to is set, the input is envelope followed by zero bytes up to pad_to bytes in all.",
		},
		Constants: vectorConstants{
			Version:         Version,
			MaxTopicLen:     MaxTopicLen,
			MaxPayloadSize:  MaxPayloadSize,
			MinEnvelopeSize: MinEnvelopeSize,
			MaxEnvelopeSize: MaxEnvelopeSize,
			MaxTimeMillis:   strconv.FormatUint(maxTimeMillis, 10),
			Validator: vectorValidator{
				MaxEnvelopeSize:   cfg.MaxEnvelopeSize,
				MaxAgeMillis:      cfg.MaxAge.Milliseconds(),
				MaxFutureSkewMill: cfg.MaxFutureSkew.Milliseconds(),
				GraceMillis:       cfg.Grace.Milliseconds(),
			},
		},
	}
	for _, d := range []identity.Domain{identity.DomainEnvelope, identity.DomainNetwork, identity.DomainCheckpoint, identity.DomainCertificate, identity.DomainRevocation} {
		th := sha256.Sum256([]byte(d))
		eh := d.Hash()
		f.Constants.Tags = append(f.Constants.Tags, vectorTag{Tag: string(d), TagHash: hex.EncodeToString(th[:]), EmptyHash: hex.EncodeToString(eh[:])})
	}
	for _, s := range []string{vecKeySeq, vecKeyBIP340, vecKeyOddY} {
		f.Keys = append(f.Keys, describeKey(tb, s))
	}

	validate := func(topic string, now time.Time) vectorValidate {
		return vectorValidate{NetworkName: vecNetwork, NetworkMagic: NetworkFromName(vecNetwork).String(), Topic: topic, NowUnixMs: now.UnixMilli()}
	}
	// signed builds a genuinely signed vector.
	signed := func(desc, secret, network string, e Envelope, mutate func(*Envelope)) vector {
		key := vecPrivateKey(tb, secret)
		e.Network = NetworkFromName(network)
		e.Sender = key.DeviceID()
		if mutate != nil {
			mutate(&e)
		}
		id, err := e.ID()
		if err != nil {
			tb.Fatal(err)
		}
		if e.Signature, err = identity.SignBIP340(key, id, [32]byte{}); err != nil {
			tb.Fatal(err)
		}
		raw, err := e.Encode()
		if err != nil {
			tb.Fatal(err)
		}
		v := describeEnvelope(tb, desc, network, raw, validate(e.Topic, vecNow))
		v.SecretKey, v.AuxRand = secret, hex.EncodeToString(make([]byte, 32))
		return v
	}
	// altered describes raw bytes derived from another vector.
	altered := func(desc string, raw []byte, network string, val vectorValidate) vector {
		return describeEnvelope(tb, desc, network, raw, val)
	}

	minimal := Envelope{Time: vecNow, Topic: "t"}
	sensor := Envelope{
		Time:    vecNow.Add(-1500 * time.Millisecond),
		Seq:     42,
		Topic:   "sensors/temp",
		Payload: []byte(`{"device":"greenhouse-1","celsius":21.5}`),
	}
	chat := Envelope{Time: vecNow, Seq: 7, Topic: "chat/general", Payload: []byte("hello, mesh"), PoWTarget: 8}
	var topic128 []byte
	for len(topic128) < MaxTopicLen {
		topic128 = append(topic128, byte(0x21+len(topic128)%94))
	}
	payload256 := make([]byte, 256)
	for i := range payload256 {
		payload256[i] = byte(i)
	}
	wide := Envelope{Time: vecNow, Seq: ^uint64(0), Topic: string(topic128), Payload: payload256, PoWNonce: ^uint64(0)}

	vMinimal := signed("minimal: one-byte topic, empty payload, no proof of work", vecKeySeq, vecNetwork, minimal, nil)
	vSensor := signed("typical sensor reading: JSON payload, sent 1.5 s before now", vecKeyBIP340, vecNetwork, sensor, nil)
	vChat := signed("proof of work: target 8 with the first nonce from 0 that meets it", vecKeySeq, vecNetwork, chat, func(e *Envelope) { mine(tb, e) })
	vWide := signed("every field at full width: seq 2^64-1, a 128-byte topic of every printable byte, payload 0x00..0xff, nonce 2^64-1 with target 0", vecKeyBIP340, vecNetwork, wide, nil)
	vOdd := signed("sender key with an odd Y coordinate (BIP-340 vector 3's secret key), normalised before signing", vecKeyOddY, vecNetwork,
		Envelope{Time: vecNow.Add(-time.Second), Seq: 1, Topic: "alerts/door", Payload: []byte("open")}, nil)
	f.Vectors = append(f.Vectors, vMinimal, vSensor, vChat, vWide, vOdd)

	sensorRaw := mustHex(tb, vSensor.Envelope)
	minimalRaw := mustHex(tb, vMinimal.Envelope)
	payloadAt := 1 + 4 + 8 + 8 + 32 + 1 + len(sensor.Topic) + 4

	flipped := bytes.Clone(sensorRaw)
	flipped[payloadAt] ^= 0x01
	sigFlipped := bytes.Clone(minimalRaw)
	sigFlipped[len(sigFlipped)-1] ^= 0x01
	wrongTopic := vSensor
	wrongTopic.Description = "the typical sensor reading arriving on pubsub topic sensors/humidity"
	wrongTopic.Validate.Topic = "sensors/humidity"
	wrongTopic.ExpectedVerdict, wrongTopic.ExpectedError = validateVector(tb, sensorRaw, wrongTopic.Validate)
	version2 := bytes.Clone(minimalRaw)
	version2[0] = 2
	topic129 := bytes.Clone(minimalRaw)
	topic129[offTopicLen] = MaxTopicLen + 1

	f.Vectors = append(f.Vectors,
		altered("the typical sensor reading with payload byte 0 xored with 0x01 after signing", flipped, vecNetwork, vSensor.Validate),
		altered("the minimal envelope with the last signature byte xored with 0x01", sigFlipped, vecNetwork, vMinimal.Validate),
		signed("signed for network bitmesh-other, validated on bitmesh-vectors", vecKeySeq, vecOtherNetwork, sensor, nil),
		wrongTopic,
		signed("stale within grace: MaxAge + 1 ms old", vecKeySeq, vecNetwork, minimal, func(e *Envelope) { e.Time = vecNow.Add(-cfg.MaxAge - time.Millisecond) }),
		signed("stale beyond grace: MaxAge + Grace + 1 ms old", vecKeySeq, vecNetwork, minimal, func(e *Envelope) { e.Time = vecNow.Add(-cfg.MaxAge - cfg.Grace - time.Millisecond) }),
		signed("future within grace: MaxFutureSkew + 1 ms ahead", vecKeySeq, vecNetwork, minimal, func(e *Envelope) { e.Time = vecNow.Add(cfg.MaxFutureSkew + time.Millisecond) }),
		signed("future beyond grace: MaxFutureSkew + Grace + 1 ms ahead", vecKeySeq, vecNetwork, minimal, func(e *Envelope) { e.Time = vecNow.Add(cfg.MaxFutureSkew + cfg.Grace + time.Millisecond) }),
		signed("insufficient work: target 8 with the first nonce from 0 that misses it", vecKeySeq, vecNetwork, chat, func(e *Envelope) { unmine(tb, e) }),
		altered("the typical sensor reading truncated by one byte", sensorRaw[:len(sensorRaw)-1], "", vSensor.Validate),
		altered("the minimal envelope with one trailing zero byte", append(bytes.Clone(minimalRaw), 0), "", vMinimal.Validate),
		altered("the minimal envelope with version byte 2", version2, "", vMinimal.Validate),
		altered("the minimal envelope with topic length 129", topic129, "", vMinimal.Validate),
	)
	return appendEdgeVectors(tb, f, cfg, signed, altered, vMinimal)
}

// appendEdgeVectors adds the boundary cases: every limit exactly met
// (accepted) and just missed.
func appendEdgeVectors(tb testing.TB, f vectorFile, cfg ValidatorConfig,
	signed func(desc, secret, network string, e Envelope, mutate func(*Envelope)) vector,
	altered func(desc string, raw []byte, network string, val vectorValidate) vector,
	vMinimal vector,
) vectorFile {
	minimal := Envelope{Time: vecNow, Topic: "t"}
	minimalRaw := mustHex(tb, vMinimal.Envelope)
	with := func(mutate func(b []byte) []byte) []byte { return mutate(bytes.Clone(minimalRaw)) }
	payloadLen := offTopic + 1 // of the minimal envelope's one-byte topic
	f.Vectors = append(f.Vectors,
		signed("exactly MaxAge old: accepted (bounds are inclusive)", vecKeySeq, vecNetwork, minimal, func(e *Envelope) { e.Time = vecNow.Add(-cfg.MaxAge) }),
		signed("exactly MaxFutureSkew ahead: accepted (bounds are inclusive)", vecKeySeq, vecNetwork, minimal, func(e *Envelope) { e.Time = vecNow.Add(cfg.MaxFutureSkew) }),
		signed("exactly MaxAge + Grace old: ignored, not yet rejected", vecKeySeq, vecNetwork, minimal, func(e *Envelope) { e.Time = vecNow.Add(-cfg.MaxAge - cfg.Grace) }),
		signed("exactly MaxFutureSkew + Grace ahead: ignored, not yet rejected", vecKeySeq, vecNetwork, minimal, func(e *Envelope) { e.Time = vecNow.Add(cfg.MaxFutureSkew + cfg.Grace) }),
		signed("time 2^62 ms, the largest that decodes: far in the future", vecKeySeq, vecNetwork, minimal, func(e *Envelope) { e.Time = time.UnixMilli(maxTimeMillis) }),
		altered("the minimal envelope with time 2^62 + 1 ms", with(func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[offTime:], maxTimeMillis+1)
			return b
		}), "", vMinimal.Validate),
		altered("the minimal envelope with topic length 0", with(func(b []byte) []byte { b[offTopicLen] = 0; return b }), "", vMinimal.Validate),
		altered("the minimal envelope with topic length 128, overrunning the input", with(func(b []byte) []byte { b[offTopicLen] = MaxTopicLen; return b }), "", vMinimal.Validate),
		altered("the minimal envelope with topic byte 0x1f (not printable)", with(func(b []byte) []byte { b[offTopic] = 0x1f; return b }), "", vMinimal.Validate),
		altered("the minimal envelope with payload length MaxPayloadSize + 1", with(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[payloadLen:], MaxPayloadSize+1)
			return b
		}), "", vMinimal.Validate),
		altered("the minimal envelope cut to 131 bytes, shorter than the fixed part", minimalRaw[:MinEnvelopeSize-1], "", vMinimal.Validate),
	)
	over := altered("the minimal envelope padded with zero bytes to MaxEnvelopeSize + 1 bytes", padTo(minimalRaw, MaxEnvelopeSize+1), "", vMinimal.Validate)
	over.Envelope, over.PadTo = vMinimal.Envelope, MaxEnvelopeSize+1
	f.Vectors = append(f.Vectors, over)
	return f
}

// padTo returns b followed by zero bytes up to n bytes in all.
func padTo(b []byte, n int) []byte { return append(bytes.Clone(b), make([]byte, n-len(b))...) }

// vectorInput is the byte string a vector feeds to the decoder.
func vectorInput(tb testing.TB, v vector) []byte {
	raw := mustHex(tb, v.Envelope)
	if v.PadTo > 0 {
		raw = padTo(raw, v.PadTo)
	}
	return raw
}

func describeKey(tb testing.TB, secret string) vectorKey {
	tb.Helper()
	k := vecPrivateKey(tb, secret)
	id := k.DeviceID()
	pub, err := crypto.MarshalPublicKey(k.Libp2pKey().GetPublic())
	if err != nil {
		tb.Fatal(err)
	}
	pid, err := id.PeerID()
	if err != nil {
		tb.Fatal(err)
	}
	return vectorKey{
		SecretKey:           secret,
		NormalisedSecretKey: hex.EncodeToString(k.Bytes()),
		XOnlyPublicKey:      id.Hex(),
		DeviceID:            id.String(),
		Libp2pPublicKey:     hex.EncodeToString(pub),
		PeerIDBytes:         hex.EncodeToString([]byte(pid)),
		PeerID:              pid.String(),
	}
}

// describeEnvelope fills a vector from raw bytes as the code decodes and
// validates them.
func describeEnvelope(tb testing.TB, desc, network string, raw []byte, val vectorValidate) vector {
	tb.Helper()
	v := vector{Description: desc, Envelope: hex.EncodeToString(raw), Validate: val}
	if e, err := Decode(raw); err == nil {
		v.NetworkName = network
		id := MessageID(raw)
		lz := id.LeadingZeroBits()
		v.Fields = &vectorFields{
			Version:      Version,
			NetworkMagic: e.Network.String(),
			TimeUnixMs:   e.Time.UnixMilli(),
			Seq:          strconv.FormatUint(e.Seq, 10),
			Sender:       e.Sender.Hex(),
			Topic:        e.Topic,
			Payload:      hex.EncodeToString(e.Payload),
			PoWTarget:    int(e.PoWTarget),
			PoWNonce:     strconv.FormatUint(e.PoWNonce, 10),
		}
		v.Unsigned = hex.EncodeToString(raw[:len(raw)-identity.SignatureSize])
		v.ID = id.String()
		v.IDLeadingZeroBits = &lz
		v.Signature = hex.EncodeToString(e.Signature[:])
	}
	v.ExpectedVerdict, v.ExpectedError = validateVector(tb, raw, val)
	return v
}

func validateVector(tb testing.TB, raw []byte, val vectorValidate) (verdict, sentinel string) {
	tb.Helper()
	v, err := NewValidator(DefaultValidatorConfig(NetworkFromName(val.NetworkName)))
	if err != nil {
		tb.Fatal(err)
	}
	r := v.Validate(time.UnixMilli(val.NowUnixMs), val.Topic, raw)
	return r.Verdict.String(), sentinelName(r.Err)
}

func marshalVectors(tb testing.TB, f vectorFile) []byte {
	tb.Helper()
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	return append(b, '\n')
}

// TestEnvelopeVectors checks every field of every vector in the file against
// the code, independently of how the file was generated, then checks that
// the generator reproduces the file byte for byte.
func TestEnvelopeVectors(t *testing.T) {
	generated := marshalVectors(t, generateVectors(t))
	if again := marshalVectors(t, generateVectors(t)); !bytes.Equal(again, generated) {
		t.Fatal("vector generation is not deterministic")
	}
	if *update {
		if err := os.MkdirAll(filepath.Dir(vectorsPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsPath, generated, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", vectorsPath)
	}
	data, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	var f vectorFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("parsing %s: %v", vectorsPath, err)
	}
	checkConstants(t, f.Constants)
	if len(f.Keys) < 2 {
		t.Errorf("%d keys, want at least 2", len(f.Keys))
	}
	for _, k := range f.Keys {
		t.Run("key/"+k.SecretKey[:8], func(t *testing.T) { checkKey(t, k) })
	}
	verdicts := map[string]int{}
	for i, v := range f.Vectors {
		verdicts[v.ExpectedVerdict+"/"+v.ExpectedError]++
		t.Run(strconv.Itoa(i)+"/"+v.Description, func(t *testing.T) { checkVector(t, v) })
	}
	for _, want := range []string{"accept/", "reject/ErrBadSignature", "reject/ErrWrongNetwork", "reject/ErrMalformed", "reject/ErrOversize",
		"reject/ErrWrongTopic", "ignore/ErrStale", "reject/ErrStale", "ignore/ErrFuture", "reject/ErrFuture", "reject/ErrInsufficientWork"} {
		if verdicts[want] == 0 {
			t.Errorf("no vector expects %s", want)
		}
	}
	if !bytes.Equal(data, generated) {
		t.Errorf("%s is out of date with the generator; run go test ./gossip -run TestEnvelopeVectors -update and review the diff", vectorsPath)
	}
}

func checkConstants(t *testing.T, c vectorConstants) {
	t.Helper()
	if c.Version != Version || c.MaxTopicLen != MaxTopicLen || c.MaxPayloadSize != MaxPayloadSize ||
		c.MinEnvelopeSize != MinEnvelopeSize || c.MaxEnvelopeSize != MaxEnvelopeSize || c.MaxTimeMillis != strconv.FormatUint(1<<62, 10) {
		t.Errorf("constants %+v disagree with the code", c)
	}
	if c.MaxPayloadSize != c.MaxEnvelopeSize-131-c.MaxTopicLen || c.MinEnvelopeSize != 132 {
		t.Errorf("constants %+v disagree with the 131-byte fixed part", c)
	}
	d := DefaultValidatorConfig(Network{})
	if c.Validator.MaxEnvelopeSize != d.MaxEnvelopeSize || c.Validator.MaxAgeMillis != d.MaxAge.Milliseconds() ||
		c.Validator.MaxFutureSkewMill != d.MaxFutureSkew.Milliseconds() || c.Validator.GraceMillis != d.Grace.Milliseconds() {
		t.Errorf("validator policy %+v disagrees with DefaultValidatorConfig", c.Validator)
	}
	want := []string{"bitmesh/envelope", "bitmesh/network", "bitmesh/checkpoint", "bitmesh/certificate", "bitmesh/revocation"}
	if len(c.Tags) != len(want) {
		t.Fatalf("%d tags, want %d", len(c.Tags), len(want))
	}
	for i, tag := range c.Tags {
		th := sha256.Sum256([]byte(tag.Tag))
		eh := taggedHash(tag.Tag, nil)
		if tag.Tag != want[i] || tag.TagHash != hex.EncodeToString(th[:]) || tag.EmptyHash != hex.EncodeToString(eh[:]) {
			t.Errorf("tag %+v", tag)
		}
		if got := identity.Domain(tag.Tag).Hash(); hex.EncodeToString(got[:]) != tag.EmptyHash {
			t.Errorf("identity.Domain(%q).Hash() = %x", tag.Tag, got)
		}
	}
}

func checkKey(t *testing.T, k vectorKey) {
	k2 := vecPrivateKey(t, k.SecretKey)
	id := k2.DeviceID()
	if id.Hex() != k.XOnlyPublicKey || hex.EncodeToString(k2.Bytes()) != k.NormalisedSecretKey || id.String() != k.DeviceID {
		t.Errorf("key %+v: code derives %s %x %s", k, id.Hex(), k2.Bytes(), id)
	}
	for secret, pub := range map[string]string{vecKeyBIP340: vecKeyBIP340Pub, vecKeyOddY: vecKeyOddYPub} {
		if k.SecretKey == secret && k.XOnlyPublicKey != pub {
			t.Errorf("BIP-340 key %s has public key %s, the BIP says %s", secret, k.XOnlyPublicKey, pub)
		}
	}
	// Normalisation: the stored secret is d or n-d.
	d, nd := new(big.Int).SetBytes(mustHex(t, k.SecretKey)), new(big.Int).SetBytes(mustHex(t, k.NormalisedSecretKey))
	if sum := new(big.Int).Add(d, nd); d.Cmp(nd) != 0 && sum.Cmp(secp256k1N) != 0 {
		t.Errorf("normalised secret key is neither d nor n-d")
	}
	if (k.SecretKey == vecKeyOddY) == (k.SecretKey == k.NormalisedSecretKey) {
		t.Errorf("secret key %s: normalised %s; only the odd-Y key must change", k.SecretKey, k.NormalisedSecretKey)
	}
	// The normalised key is the secret or its negation, and has an even-Y
	// public key, so it yields the same x-only key.
	if n := vecPrivateKey(t, k.NormalisedSecretKey); n.DeviceID() != id || !bytes.Equal(n.Bytes(), mustHex(t, k.NormalisedSecretKey)) {
		t.Error("normalised secret key is not a fixed point of normalisation")
	}
	parsed, err := identity.ParseDeviceID(k.DeviceID)
	if err != nil || parsed != id || !strings.HasPrefix(k.DeviceID, "bmdev1") {
		t.Errorf("ParseDeviceID(%q) = %s, %v", k.DeviceID, parsed, err)
	}
	// libp2p public key protobuf: field 1 (Type) = 2 (Secp256k1), field 2
	// (Data) = the 33-byte compressed key, prefix 0x02 for even Y.
	wantPub := append([]byte{0x08, 0x02, 0x12, 0x21, 0x02}, id[:]...)
	if k.Libp2pPublicKey != hex.EncodeToString(wantPub) {
		t.Errorf("libp2p public key %s, want %x", k.Libp2pPublicKey, wantPub)
	}
	// Peer ID: identity multihash (code 0x00, length 0x25) of that protobuf.
	if k.PeerIDBytes != "0025"+hex.EncodeToString(wantPub) {
		t.Errorf("peer ID bytes %s, want 0025%x", k.PeerIDBytes, wantPub)
	}
	pid, err := id.PeerID()
	if err != nil || pid.String() != k.PeerID || !strings.HasPrefix(k.PeerID, "16Uiu2") {
		t.Errorf("PeerID = %s, %v; file says %s", pid, err, k.PeerID)
	}
	back, err := identity.DeviceIDFromPeerID(pid)
	if err != nil || back != id {
		t.Errorf("DeviceIDFromPeerID = %s, %v", back, err)
	}
}

func checkVector(t *testing.T, v vector) {
	raw := vectorInput(t, v)
	e, err := Decode(raw)
	if v.Fields == nil {
		if err == nil {
			t.Fatal("vector has no fields but decodes")
		}
		if v.ExpectedVerdict != "reject" || !errors.Is(err, sentinelNames[v.ExpectedError]) {
			t.Errorf("Decode error %v; vector expects %s %s", err, v.ExpectedVerdict, v.ExpectedError)
		}
		if v.SecretKey != "" || v.Unsigned != "" || v.ID != "" || v.Signature != "" {
			t.Error("undecodable vector carries derived fields")
		}
	} else {
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		checkFields(t, v, raw, e)
	}

	// The verdict, on a fresh validator.
	if v.Validate.NetworkMagic != NetworkFromName(v.Validate.NetworkName).String() {
		t.Errorf("validate.network_magic %s, want %s", v.Validate.NetworkMagic, NetworkFromName(v.Validate.NetworkName))
	}
	val, err := NewValidator(DefaultValidatorConfig(NetworkFromName(v.Validate.NetworkName)))
	if err != nil {
		t.Fatal(err)
	}
	r := val.Validate(time.UnixMilli(v.Validate.NowUnixMs), v.Validate.Topic, raw)
	if r.Verdict.String() != v.ExpectedVerdict {
		t.Errorf("verdict %v (%v), vector expects %s", r.Verdict, r.Err, v.ExpectedVerdict)
	}
	if v.ExpectedError == "" {
		if r.Err != nil {
			t.Errorf("error %v, vector expects none", r.Err)
		}
	} else if s, ok := sentinelNames[v.ExpectedError]; !ok || !errors.Is(r.Err, s) {
		t.Errorf("error %v, vector expects %s", r.Err, v.ExpectedError)
	}
}

func checkFields(t *testing.T, v vector, raw []byte, e *Envelope) {
	t.Helper()
	f := v.Fields
	seq, err1 := strconv.ParseUint(f.Seq, 10, 64)
	nonce, err2 := strconv.ParseUint(f.PoWNonce, 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("seq %q / pow_nonce %q: %v %v", f.Seq, f.PoWNonce, err1, err2)
	}
	if NetworkFromName(v.NetworkName).String() != f.NetworkMagic {
		t.Errorf("network %q has magic %s, vector says %s", v.NetworkName, NetworkFromName(v.NetworkName), f.NetworkMagic)
	}
	// Build the envelope from the vector's fields alone.
	built := Envelope{
		Time:      time.UnixMilli(f.TimeUnixMs),
		Seq:       seq,
		Topic:     f.Topic,
		Payload:   mustHex(t, f.Payload),
		PoWTarget: uint8(f.PoWTarget),
		PoWNonce:  nonce,
	}
	copy(built.Network[:], mustHex(t, f.NetworkMagic))
	copy(built.Sender[:], mustHex(t, f.Sender))
	copy(built.Signature[:], mustHex(t, v.Signature))
	if f.Version != Version || f.PoWTarget > 255 {
		t.Errorf("version %d, pow_target %d", f.Version, f.PoWTarget)
	}
	if d := envelopeDiff(&built, e); d != "" {
		t.Errorf("decoded envelope differs from the vector's fields in %s", d)
	}
	unsigned, err := built.AppendUnsigned(nil)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(unsigned) != v.Unsigned {
		t.Errorf("unsigned encoding of the fields\n got %x\nwant %s", unsigned, v.Unsigned)
	}
	if !bytes.Equal(raw, append(bytes.Clone(unsigned), built.Signature[:]...)) {
		t.Error("envelope is not unsigned || signature")
	}
	if enc, err := e.Encode(); err != nil || !bytes.Equal(enc, raw) {
		t.Errorf("re-encoding differs (err %v)", err)
	}
	// The ID three ways: the package, the identity domain, the definition.
	want := taggedHash("bitmesh/envelope", unsigned)
	if hex.EncodeToString(want[:]) != v.ID {
		t.Errorf("id %s, tagged hash gives %x", v.ID, want)
	}
	if id := MessageID(raw); id != ID(want) {
		t.Errorf("MessageID %s", id)
	}
	if id, err := built.ID(); err != nil || id != ID(want) {
		t.Errorf("Envelope.ID() = %s, %v", id, err)
	}
	if id := ID(want); v.IDLeadingZeroBits == nil || id.LeadingZeroBits() != *v.IDLeadingZeroBits {
		t.Errorf("id_leading_zero_bits %v, ID has %d", v.IDLeadingZeroBits, id.LeadingZeroBits())
	}
	if v.SecretKey != "" {
		key := vecPrivateKey(t, v.SecretKey)
		if key.DeviceID() != built.Sender {
			t.Errorf("secret key's device ID %s, sender %s", key.DeviceID().Hex(), f.Sender)
		}
		var aux [32]byte
		copy(aux[:], mustHex(t, v.AuxRand))
		sig, err := identity.SignBIP340(key, want, aux)
		if err != nil || sig != built.Signature {
			t.Errorf("BIP-340 signature of the ID is %x (err %v), vector says %s", sig, err, v.Signature)
		}
		if err := identity.VerifyBIP340(built.Sender, want, built.Signature); err != nil {
			t.Errorf("signature does not verify: %v", err)
		}
	} else if v.ExpectedError == "ErrBadSignature" && identity.VerifyBIP340(built.Sender, want, built.Signature) == nil {
		t.Error("altered vector's signature verifies")
	}
}

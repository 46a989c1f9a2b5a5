package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/identity"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
)

var allSentinels = []error{
	ErrMalformed, ErrOversize, ErrWrongNetwork, ErrStale, ErrFuture,
	ErrInsufficientWork, ErrBadSignature, ErrWrongTopic,
}

// checkResult asserts the verdict, that Err wraps exactly wantErr (nil iff
// Accept), and the ID/Envelope fields.
func checkResult(t *testing.T, r Result, raw []byte, want Verdict, wantErr error) {
	t.Helper()
	if r.Verdict != want {
		t.Errorf("verdict %v (%v), want %v", r.Verdict, r.Err, want)
	}
	if (r.Err == nil) != (r.Verdict == Accept) {
		t.Errorf("verdict %v with error %v: Err must be nil iff Accept", r.Verdict, r.Err)
	}
	if wantErr != nil && !errors.Is(r.Err, wantErr) {
		t.Errorf("error %v does not wrap %v", r.Err, wantErr)
	}
	for _, s := range allSentinels {
		if s != wantErr && errors.Is(r.Err, s) {
			t.Errorf("error %v also wraps %v", r.Err, s)
		}
	}
	decodable := wantErr != ErrMalformed && wantErr != ErrOversize
	if decodable {
		if r.Envelope == nil {
			t.Error("Result has no Envelope for a decodable input")
		}
		if r.ID != MessageID(raw) {
			t.Errorf("Result.ID = %s, want MessageID %s", r.ID, MessageID(raw))
		}
	} else if r.Envelope != nil || r.ID != (ID{}) {
		t.Error("Result has an Envelope or ID for undecodable input")
	}
}

func TestValidatePipeline(t *testing.T) {
	key, other := testKey(t, 1), testKey(t, 2)
	cfg := DefaultValidatorConfig(testNetwork)
	at := func(d time.Duration) func(*Envelope) { return func(e *Envelope) { e.Time = testNow.Add(d) } }
	sealAt := func(d time.Duration) []byte { raw, _ := seal(t, key, at(d)); return raw }

	tests := []struct {
		name    string
		cfg     func(*ValidatorConfig)
		topic   string // arrival topic; "" means the envelope's "sensors/temp"
		raw     func(t *testing.T) []byte
		want    Verdict
		wantErr error
	}{
		{
			name: "valid",
			raw:  func(t *testing.T) []byte { raw, _ := seal(t, key, nil); return raw },
			want: Accept,
		},
		{
			name:  "valid, empty payload, one-byte topic",
			topic: "t",
			raw: func(t *testing.T) []byte {
				raw, _ := seal(t, key, func(e *Envelope) { e.Topic, e.Payload = "t", nil })
				return raw
			},
			want: Accept,
		},
		{
			// Within the protocol limit: an honest forwarder may have sent
			// it to a node with a smaller local limit.
			name:    "oversize for the validator's limit only",
			cfg:     func(c *ValidatorConfig) { c.MaxEnvelopeSize = MinEnvelopeSize + 10 },
			raw:     func(t *testing.T) []byte { raw, _ := seal(t, key, nil); return raw },
			want:    Ignore,
			wantErr: ErrOversize,
		},
		{
			name:    "oversize for the protocol",
			raw:     func(t *testing.T) []byte { return make([]byte, MaxEnvelopeSize+1) },
			want:    Reject,
			wantErr: ErrOversize,
		},
		{
			name: "exactly the validator's limit",
			cfg:  func(c *ValidatorConfig) { c.MaxEnvelopeSize = baseEnvelopeSize() },
			raw:  func(t *testing.T) []byte { raw, _ := seal(t, key, nil); return raw },
			want: Accept,
		},
		{
			name: "oversize for the protocol",
			raw: func(t *testing.T) []byte {
				raw, _ := seal(t, key, nil)
				return append(raw, make([]byte, MaxEnvelopeSize)...)
			},
			want:    Reject,
			wantErr: ErrOversize,
		},
		{
			name: "topic length over 128",
			raw: func(t *testing.T) []byte {
				raw, _ := seal(t, key, nil)
				raw[offTopicLen] = MaxTopicLen + 1
				return raw
			},
			want:    Reject,
			wantErr: ErrOversize,
		},
		{
			name:    "garbage",
			raw:     func(t *testing.T) []byte { return []byte("GET / HTTP/1.1\r\nHost: bitmesh\r\n\r\n") },
			want:    Reject,
			wantErr: ErrMalformed,
		},
		{
			name:    "empty",
			raw:     func(t *testing.T) []byte { return nil },
			want:    Reject,
			wantErr: ErrMalformed,
		},
		{
			name: "truncated",
			raw: func(t *testing.T) []byte {
				raw, _ := seal(t, key, nil)
				return raw[:len(raw)-1]
			},
			want:    Reject,
			wantErr: ErrMalformed,
		},
		{
			name: "other network",
			raw: func(t *testing.T) []byte {
				raw, _ := seal(t, key, func(e *Envelope) { e.Network = NetworkFromName("bitmesh-other") })
				return raw
			},
			want:    Reject,
			wantErr: ErrWrongNetwork,
		},
		{
			name:    "wrong topic",
			topic:   "sensors/humidity",
			raw:     func(t *testing.T) []byte { raw, _ := seal(t, key, nil); return raw },
			want:    Reject,
			wantErr: ErrWrongTopic,
		},
		{
			name: "payload byte flipped after sealing",
			raw: func(t *testing.T) []byte {
				raw, e := seal(t, key, nil)
				return flip(raw, payloadOffset(e))
			},
			want:    Reject,
			wantErr: ErrBadSignature,
		},
		{
			name: "seq byte flipped after sealing",
			raw: func(t *testing.T) []byte {
				raw, _ := seal(t, key, nil)
				return flip(raw, offSeq+7)
			},
			want:    Reject,
			wantErr: ErrBadSignature,
		},
		{
			name: "signature byte flipped",
			raw: func(t *testing.T) []byte {
				raw, _ := seal(t, key, nil)
				return flip(raw, len(raw)-1)
			},
			want:    Reject,
			wantErr: ErrBadSignature,
		},
		{
			name: "signature R flipped",
			raw: func(t *testing.T) []byte {
				raw, _ := seal(t, key, nil)
				return flip(raw, len(raw)-identity.SignatureSize)
			},
			want:    Reject,
			wantErr: ErrBadSignature,
		},
		{
			name: "zero signature",
			raw: func(t *testing.T) []byte {
				raw, _ := seal(t, key, nil)
				clear(raw[len(raw)-identity.SignatureSize:])
				return raw
			},
			want:    Reject,
			wantErr: ErrBadSignature,
		},
		{
			name: "signed by another key than Sender",
			raw: func(t *testing.T) []byte {
				e := baseEnvelope()
				e.Sender = key.DeviceID()
				id, err := e.ID()
				if err != nil {
					t.Fatal(err)
				}
				if e.Signature, err = other.SignHash(id); err != nil {
					t.Fatal(err)
				}
				raw, err := e.Encode()
				if err != nil {
					t.Fatal(err)
				}
				return raw
			},
			want:    Reject,
			wantErr: ErrBadSignature,
		},
		{
			name: "sender is not a curve point",
			raw: func(t *testing.T) []byte {
				raw, _ := seal(t, key, nil)
				for i := range 32 {
					raw[offSender+i] = 0xff
				}
				return raw
			},
			want:    Reject,
			wantErr: ErrBadSignature,
		},
		{name: "exactly MaxAge old", raw: func(*testing.T) []byte { return sealAt(-cfg.MaxAge) }, want: Accept},
		{name: "MaxAge+1ms old", raw: func(*testing.T) []byte { return sealAt(-cfg.MaxAge - time.Millisecond) }, want: Ignore, wantErr: ErrStale},
		{name: "MaxAge+Grace old", raw: func(*testing.T) []byte { return sealAt(-cfg.MaxAge - cfg.Grace) }, want: Ignore, wantErr: ErrStale},
		{name: "MaxAge+Grace+1ms old", raw: func(*testing.T) []byte { return sealAt(-cfg.MaxAge - cfg.Grace - time.Millisecond) }, want: Reject, wantErr: ErrStale},
		{name: "a day old", raw: func(*testing.T) []byte { return sealAt(-24 * time.Hour) }, want: Reject, wantErr: ErrStale},
		{name: "time zero", raw: func(*testing.T) []byte { return sealAt(-testNow.Sub(time.UnixMilli(0))) }, want: Reject, wantErr: ErrStale},
		{name: "exactly MaxFutureSkew ahead", raw: func(*testing.T) []byte { return sealAt(cfg.MaxFutureSkew) }, want: Accept},
		{name: "MaxFutureSkew+1ms ahead", raw: func(*testing.T) []byte { return sealAt(cfg.MaxFutureSkew + time.Millisecond) }, want: Ignore, wantErr: ErrFuture},
		{name: "MaxFutureSkew+Grace ahead", raw: func(*testing.T) []byte { return sealAt(cfg.MaxFutureSkew + cfg.Grace) }, want: Ignore, wantErr: ErrFuture},
		{name: "MaxFutureSkew+Grace+1ms ahead", raw: func(*testing.T) []byte { return sealAt(cfg.MaxFutureSkew + cfg.Grace + time.Millisecond) }, want: Reject, wantErr: ErrFuture},
		{name: "far future", raw: func(*testing.T) []byte { return sealAt(100 * 365 * 24 * time.Hour) }, want: Reject, wantErr: ErrFuture},
		{
			name: "stale with a bad signature is judged stale",
			raw: func(t *testing.T) []byte {
				raw, _ := seal(t, key, at(-time.Hour))
				return flip(raw, len(raw)-1)
			},
			want:    Reject,
			wantErr: ErrStale,
		},
		{
			name: "zero grace rejects just past the window",
			cfg:  func(c *ValidatorConfig) { c.Grace = 0 },
			raw:  func(*testing.T) []byte { return sealAt(-cfg.MaxAge - time.Millisecond) },
			want: Reject, wantErr: ErrStale,
		},
		{
			name: "PoW target 8 not mined",
			raw: func(t *testing.T) []byte {
				raw, _ := seal(t, key, func(e *Envelope) { e.Sender, e.PoWTarget = key.DeviceID(), 8; unmine(t, e) })
				return raw
			},
			want:    Reject,
			wantErr: ErrInsufficientWork,
		},
		{
			name: "PoW target 8 mined",
			raw: func(t *testing.T) []byte {
				raw, e := seal(t, key, func(e *Envelope) { e.Sender, e.PoWTarget = key.DeviceID(), 8; mine(t, e) })
				if id, _ := e.ID(); id.LeadingZeroBits() < 8 {
					t.Fatalf("mined ID %s has fewer than 8 leading zero bits", id)
				}
				return raw
			},
			want: Accept,
		},
		{
			name: "PoW target 255 is unreachable",
			raw: func(t *testing.T) []byte {
				raw, _ := seal(t, key, func(e *Envelope) { e.PoWTarget = 255 })
				return raw
			},
			want:    Reject,
			wantErr: ErrInsufficientWork,
		},
		{
			name: "mined nonce changed after sealing",
			raw: func(t *testing.T) []byte {
				raw, _ := seal(t, key, func(e *Envelope) { e.Sender, e.PoWTarget = key.DeviceID(), 8; mine(t, e) })
				return flip(raw, len(raw)-identity.SignatureSize-1)
			},
			// The new ID almost surely misses the target; either way the
			// envelope is rejected.
			want: Reject,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestValidator(t, tt.cfg)
			raw := tt.raw(t)
			topic := tt.topic
			if topic == "" {
				topic = "sensors/temp"
			}
			r := v.Validate(testNow, topic, raw)
			if tt.wantErr == nil && tt.want == Reject {
				if r.Verdict != Reject || !(errors.Is(r.Err, ErrInsufficientWork) || errors.Is(r.Err, ErrBadSignature)) {
					t.Fatalf("got %v %v, want Reject for insufficient work or bad signature", r.Verdict, r.Err)
				}
				return
			}
			checkResult(t, r, raw, tt.want, tt.wantErr)
			if r.Cached {
				t.Error("first validation reported a cache hit")
			}
			st := v.Stats()
			if st.Validated != 1 || st.CacheHits != 0 {
				t.Errorf("stats %+v, want 1 validated and no cache hit", st)
			}
			// A signature is checked only for envelopes that pass every
			// cheaper check.
			wantChecks := uint64(0)
			if tt.want == Accept || errors.Is(tt.wantErr, ErrBadSignature) {
				wantChecks = 1
			}
			if st.SignatureChecks != wantChecks {
				t.Errorf("%d signature checks, want %d", st.SignatureChecks, wantChecks)
			}
		})
	}
}

func baseEnvelopeSize() int {
	e := baseEnvelope()
	return e.EncodedSize()
}

func TestValidateDuplicateCountsSignatureChecks(t *testing.T) {
	key := testKey(t, 1)
	const topic = "sensors/temp"

	t.Run("valid envelope is verified once", func(t *testing.T) {
		v := newTestValidator(t, nil)
		raw, _ := seal(t, key, nil)
		for i := range 100 {
			r := v.Validate(testNow, topic, raw)
			checkResult(t, r, raw, Accept, nil)
			if r.Cached != (i > 0) {
				t.Fatalf("call %d: Cached = %v", i, r.Cached)
			}
		}
		if st := v.Stats(); st != (Stats{Validated: 100, SignatureChecks: 1, CacheHits: 99}) {
			t.Errorf("stats %+v, want 100 validated, 1 signature check, 99 cache hits", st)
		}
	})

	t.Run("bad signature is verified once", func(t *testing.T) {
		v := newTestValidator(t, nil)
		raw, _ := seal(t, key, nil)
		raw = flip(raw, len(raw)-1)
		for range 100 {
			checkResult(t, v.Validate(testNow, topic, raw), raw, Reject, ErrBadSignature)
		}
		if st := v.Stats(); st != (Stats{Validated: 100, SignatureChecks: 1, CacheHits: 99}) {
			t.Errorf("stats %+v, want 100 validated, 1 signature check, 99 cache hits", st)
		}
	})

	t.Run("forged copy of an accepted envelope", func(t *testing.T) {
		v := newTestValidator(t, nil)
		raw, _ := seal(t, key, nil)
		forged := flip(raw, len(raw)-1)
		if MessageID(forged) != MessageID(raw) {
			t.Fatal("forged copy has another ID")
		}
		checkResult(t, v.Validate(testNow, topic, raw), raw, Accept, nil)
		r := v.Validate(testNow, topic, forged)
		checkResult(t, r, forged, Reject, ErrBadSignature)
		if r.Cached {
			t.Error("forged copy was answered from the valid copy's cache entry")
		}
		if st := v.Stats(); st.SignatureChecks != 2 {
			t.Errorf("%d signature checks, want 2: the forged copy must be checked", st.SignatureChecks)
		}
		r = v.Validate(testNow, topic, raw)
		checkResult(t, r, raw, Accept, nil)
		if !r.Cached {
			t.Error("valid copy no longer served from the cache after a forgery")
		}
		if st := v.Stats(); st.SignatureChecks != 2 || st.CacheHits != 1 {
			t.Errorf("stats %+v, want 2 signature checks and 1 cache hit", st)
		}
	})

	t.Run("re-signed copy is a duplicate", func(t *testing.T) {
		v := newTestValidator(t, nil)
		raw, e := seal(t, key, nil)
		resigned, _ := signUnchecked(t, e, key) // fresh BIP-340 randomness
		if bytes.Equal(raw, resigned) || MessageID(raw) != MessageID(resigned) {
			t.Fatal("want the same ID with other signature bytes")
		}
		forged := flip(resigned, len(resigned)-1)
		checkResult(t, v.Validate(testNow, topic, raw), raw, Accept, nil)
		checkResult(t, v.Validate(testNow, topic, forged), forged, Reject, ErrBadSignature)
		checkResult(t, v.Validate(testNow, topic, resigned), resigned, Ignore, ErrDuplicate)
		checkResult(t, v.Validate(testNow, topic, raw), raw, Accept, nil)
		// History sync keeps a valid copy: its log de-duplicates by ID.
		r := v.ValidateRecovered(testNow, testNow, topic, resigned)
		checkResult(t, r, resigned, Accept, nil)
	})

	t.Run("re-signed copies validated at once: one accepted", func(t *testing.T) {
		v := newTestValidator(t, nil)
		_, e := seal(t, key, nil)
		copies := make([][]byte, 16)
		for i := range copies {
			copies[i], _ = signUnchecked(t, e, key)
		}
		var accepted atomic.Int32
		var wg sync.WaitGroup
		for _, raw := range copies {
			wg.Go(func() {
				switch r := v.Validate(testNow, topic, raw); {
				case r.Verdict == Accept:
					accepted.Add(1)
				case !errors.Is(r.Err, ErrDuplicate):
					t.Errorf("copy refused with %v, want %v", r.Err, ErrDuplicate)
				}
			})
		}
		wg.Wait()
		if n := accepted.Load(); n != 1 {
			t.Errorf("%d copies accepted, want 1", n)
		}
	})

	t.Run("forged copy first, then the valid one", func(t *testing.T) {
		v := newTestValidator(t, nil)
		raw, _ := seal(t, key, nil)
		forged := flip(raw, len(raw)-1)
		checkResult(t, v.Validate(testNow, topic, forged), forged, Reject, ErrBadSignature)
		r := v.Validate(testNow, topic, raw)
		checkResult(t, r, raw, Accept, nil)
		if r.Cached {
			t.Error("valid copy answered from the forged copy's entry")
		}
		r = v.Validate(testNow, topic, raw)
		checkResult(t, r, raw, Accept, nil)
		if !r.Cached {
			t.Error("valid copy not cached after it replaced a rejected entry")
		}
		if st := v.Stats(); st.SignatureChecks != 2 || st.CacheHits != 1 {
			t.Errorf("stats %+v, want 2 signature checks and 1 cache hit", st)
		}
	})

	t.Run("MarkVerified skips the signature check", func(t *testing.T) {
		v := newTestValidator(t, nil)
		raw, e := seal(t, key, nil)
		id, _ := e.ID()
		v.MarkVerified(testNow, id, e.Signature)
		r := v.Validate(testNow, topic, raw)
		checkResult(t, r, raw, Accept, nil)
		if !r.Cached {
			t.Error("own envelope not served from the cache")
		}
		if st := v.Stats(); st.SignatureChecks != 0 || st.CacheHits != 1 {
			t.Errorf("stats %+v, want no signature check", st)
		}
		// MarkVerified vouches for one signature only.
		forged := flip(raw, len(raw)-1)
		checkResult(t, v.Validate(testNow, topic, forged), forged, Reject, ErrBadSignature)
		if st := v.Stats(); st.SignatureChecks != 1 {
			t.Errorf("%d signature checks, want 1 for the forged copy", st.SignatureChecks)
		}
	})

	t.Run("MarkVerified does not skip the cheap checks", func(t *testing.T) {
		v := newTestValidator(t, nil)
		raw, e := seal(t, key, nil)
		id, _ := e.ID()
		v.MarkVerified(testNow, id, e.Signature)
		checkResult(t, v.Validate(testNow, "other/topic", raw), raw, Reject, ErrWrongTopic)
		checkResult(t, v.Validate(testNow.Add(time.Hour), topic, raw), raw, Reject, ErrStale)
	})

	t.Run("cached entry outlives the freshness window", func(t *testing.T) {
		v := newTestValidator(t, nil)
		cfg := v.Config()
		// Sealed as far ahead as allowed, then validated until it is as old
		// as allowed: the entry put at the first sighting must last.
		raw, _ := seal(t, key, func(e *Envelope) { e.Time = testNow.Add(cfg.MaxFutureSkew) })
		checkResult(t, v.Validate(testNow, topic, raw), raw, Accept, nil)
		last := testNow.Add(cfg.MaxFutureSkew + cfg.MaxAge)
		r := v.Validate(last, topic, raw)
		checkResult(t, r, raw, Accept, nil)
		if !r.Cached {
			t.Error("entry expired while the envelope was still fresh")
		}
		checkResult(t, v.Validate(last.Add(time.Millisecond), topic, raw), raw, Ignore, ErrStale)
	})

	t.Run("entry expires after Window", func(t *testing.T) {
		v := newTestValidator(t, nil)
		window := v.Config().Window()
		// MarkVerified at testNow; the envelope is validated, fresh, at
		// testNow+window-1ms (still cached) and, with its twin made at
		// testNow+window, after expiry.
		for _, tc := range []struct {
			after  time.Duration
			cached bool
		}{{window - time.Millisecond, true}, {window, false}} {
			when := testNow.Add(tc.after)
			raw, e := seal(t, key, func(e *Envelope) { e.Time = when })
			id, _ := e.ID()
			v.MarkVerified(testNow, id, e.Signature)
			before := v.Stats().SignatureChecks
			r := v.Validate(when, topic, raw)
			checkResult(t, r, raw, Accept, nil)
			if r.Cached != tc.cached {
				t.Errorf("validated %v after MarkVerified: Cached = %v, want %v", tc.after, r.Cached, tc.cached)
			}
			if checks := v.Stats().SignatureChecks - before; checks != map[bool]uint64{true: 0, false: 1}[tc.cached] {
				t.Errorf("validated %v after MarkVerified: %d signature checks", tc.after, checks)
			}
		}
	})

	t.Run("eviction by size", func(t *testing.T) {
		v := newTestValidator(t, func(c *ValidatorConfig) { c.SeenCacheSize = 2 })
		var raws [3][]byte
		for i := range raws {
			raws[i], _ = seal(t, key, func(e *Envelope) { e.Seq = uint64(i) })
			checkResult(t, v.Validate(testNow, topic, raws[i]), raws[i], Accept, nil)
		}
		if st := v.Stats(); st.SignatureChecks != 3 {
			t.Fatalf("%d signature checks for 3 distinct envelopes", st.SignatureChecks)
		}
		r := v.Validate(testNow, topic, raws[2])
		if !r.Cached {
			t.Error("newest entry evicted")
		}
		r = v.Validate(testNow, topic, raws[0])
		checkResult(t, r, raws[0], Accept, nil)
		if r.Cached {
			t.Error("oldest entry survived in a cache of 2")
		}
		if st := v.Stats(); st.SignatureChecks != 4 || st.CacheHits != 1 {
			t.Errorf("stats %+v, want 4 signature checks and 1 cache hit", st)
		}
	})
}

func TestSeenCache(t *testing.T) {
	const ttl = time.Minute
	sig := func(b byte) identity.Signature { return identity.Signature{b} }
	id := func(b byte) ID { return ID{b} }
	accept := func(s identity.Signature) seenEntry { return seenEntry{sig: s, verdict: Accept} }
	reject := func(s identity.Signature) seenEntry {
		return seenEntry{sig: s, verdict: Reject, err: ErrBadSignature}
	}

	t.Run("expiry", func(t *testing.T) {
		c := newSeenCache(8, ttl)
		c.put(testNow, id(1), accept(sig(1)))
		c.put(testNow.Add(time.Second), id(2), accept(sig(2)))
		if _, ok := c.get(testNow.Add(ttl-time.Nanosecond), id(1), sig(1)); !ok {
			t.Error("entry gone before its ttl")
		}
		if _, ok := c.get(testNow.Add(ttl), id(1), sig(1)); ok {
			t.Error("entry still there at its ttl")
		}
		if c.len() != 1 {
			t.Errorf("len %d after one expiry, want 1", c.len())
		}
		if _, ok := c.get(testNow.Add(ttl+time.Second), id(2), sig(2)); ok || c.len() != 0 {
			t.Errorf("second entry not expired (len %d)", c.len())
		}
	})

	t.Run("signature is part of the key", func(t *testing.T) {
		c := newSeenCache(8, ttl)
		c.put(testNow, id(1), accept(sig(1)))
		if _, ok := c.get(testNow, id(1), sig(2)); ok {
			t.Error("hit for another signature")
		}
		if e, ok := c.get(testNow, id(1), sig(1)); !ok || e.verdict != Accept {
			t.Errorf("get = %+v, %v", e, ok)
		}
	})

	t.Run("reject never evicts accept", func(t *testing.T) {
		c := newSeenCache(8, ttl)
		c.put(testNow, id(1), accept(sig(1)))
		c.put(testNow, id(1), reject(sig(2)))
		if _, ok := c.get(testNow, id(1), sig(1)); !ok {
			t.Error("accepted entry replaced by a rejected copy")
		}
		if _, ok := c.get(testNow, id(1), sig(2)); ok {
			t.Error("rejected copy cached over an accepted one")
		}
	})

	t.Run("accept replaces reject", func(t *testing.T) {
		c := newSeenCache(8, ttl)
		c.put(testNow, id(1), reject(sig(2)))
		c.put(testNow, id(1), accept(sig(1)))
		if e, ok := c.get(testNow, id(1), sig(1)); !ok || e.verdict != Accept {
			t.Errorf("get = %+v, %v; want the accepted entry", e, ok)
		}
		if c.len() != 1 || c.n != 1 {
			t.Errorf("len %d, ring %d; want 1 each", c.len(), c.n)
		}
	})

	t.Run("size bound evicts oldest", func(t *testing.T) {
		c := newSeenCache(3, ttl)
		for i := range byte(10) {
			c.put(testNow.Add(time.Duration(i)*time.Millisecond), id(i), accept(sig(i)))
			if c.len() > 3 || c.n != c.len() {
				t.Fatalf("after %d puts: len %d, ring %d", i+1, c.len(), c.n)
			}
		}
		for i := range byte(10) {
			_, ok := c.get(testNow.Add(10*time.Millisecond), id(i), sig(i))
			if ok != (i >= 7) {
				t.Errorf("entry %d present = %v", i, ok)
			}
		}
	})

	t.Run("size one", func(t *testing.T) {
		c := newSeenCache(1, ttl)
		c.put(testNow, id(1), accept(sig(1)))
		c.put(testNow, id(2), accept(sig(2)))
		if _, ok := c.get(testNow, id(1), sig(1)); ok {
			t.Error("first entry survived in a cache of 1")
		}
		if _, ok := c.get(testNow, id(2), sig(2)); !ok {
			t.Error("second entry missing")
		}
	})
}

// TestValidateConcurrent hammers one validator from 8 goroutines with a mix
// of envelopes; run it with -race.
func TestValidateConcurrent(t *testing.T) {
	key := testKey(t, 1)
	const topic = "sensors/temp"
	type input struct {
		raw     []byte
		want    Verdict
		wantErr error
	}
	var inputs []input
	for i := range 16 {
		raw, _ := seal(t, key, func(e *Envelope) { e.Seq = uint64(i) })
		inputs = append(inputs, input{raw, Accept, nil})
		if i%4 == 0 {
			inputs = append(inputs, input{flip(raw, len(raw)-1), Reject, ErrBadSignature})
		}
	}
	stale, _ := seal(t, key, func(e *Envelope) { e.Time = testNow.Add(-time.Hour) })
	wrong, _ := seal(t, key, func(e *Envelope) { e.Network = NetworkFromName("elsewhere") })
	inputs = append(inputs,
		input{stale, Reject, ErrStale},
		input{wrong, Reject, ErrWrongNetwork},
		input{[]byte("garbage"), Reject, ErrMalformed},
	)

	// A small cache forces evictions and re-checks under contention.
	v := newTestValidator(t, func(c *ValidatorConfig) { c.SeenCacheSize = 8 })
	const workers, rounds = 8, 6
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				for i := range inputs {
					in := inputs[(i+w*7+r)%len(inputs)]
					res := v.Validate(testNow, topic, in.raw)
					if res.Verdict != in.want || (in.wantErr != nil && !errors.Is(res.Err, in.wantErr)) || (res.Err == nil) != (res.Verdict == Accept) {
						t.Errorf("worker %d: got %v %v, want %v %v", w, res.Verdict, res.Err, in.want, in.wantErr)
						return
					}
				}
			}
		})
	}
	wg.Go(func() {
		for range rounds * len(inputs) {
			_ = v.Stats()
		}
	})
	wg.Wait()
	st := v.Stats()
	total := uint64(workers * rounds * len(inputs))
	if st.Validated != total {
		t.Errorf("validated %d, want %d", st.Validated, total)
	}
	// Stale, wrong-network and garbage inputs never reach the cache.
	if reached := total - 3*workers*rounds; st.SignatureChecks+st.CacheHits != reached {
		t.Errorf("signature checks %d + cache hits %d != %d envelopes that reached the cache", st.SignatureChecks, st.CacheHits, reached)
	}
	if st.SignatureChecks < uint64(len(inputs)-3) {
		t.Errorf("only %d signature checks for %d distinct envelopes", st.SignatureChecks, len(inputs)-3)
	}
}

func TestValidatorConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*ValidatorConfig)
		wantErr string
	}{
		{name: "default", mutate: func(*ValidatorConfig) {}},
		{name: "smallest envelope limit", mutate: func(c *ValidatorConfig) { c.MaxEnvelopeSize = MinEnvelopeSize }},
		{name: "zero skew and grace", mutate: func(c *ValidatorConfig) { c.MaxFutureSkew, c.Grace = 0, 0 }},
		{name: "cache of one", mutate: func(c *ValidatorConfig) { c.SeenCacheSize = 1 }},
		{name: "no sender key cache", mutate: func(c *ValidatorConfig) { c.SenderKeyCacheSize = 0 }},

		{name: "zero envelope limit", mutate: func(c *ValidatorConfig) { c.MaxEnvelopeSize = 0 }, wantErr: "MaxEnvelopeSize"},
		{name: "envelope limit below minimum", mutate: func(c *ValidatorConfig) { c.MaxEnvelopeSize = MinEnvelopeSize - 1 }, wantErr: "MaxEnvelopeSize"},
		{name: "envelope limit above protocol", mutate: func(c *ValidatorConfig) { c.MaxEnvelopeSize = MaxEnvelopeSize + 1 }, wantErr: "MaxEnvelopeSize"},
		{name: "zero MaxAge", mutate: func(c *ValidatorConfig) { c.MaxAge = 0 }, wantErr: "MaxAge"},
		{name: "negative MaxAge", mutate: func(c *ValidatorConfig) { c.MaxAge = -time.Second }, wantErr: "MaxAge"},
		{name: "negative skew", mutate: func(c *ValidatorConfig) { c.MaxFutureSkew = -1 }, wantErr: "MaxFutureSkew"},
		{name: "negative grace", mutate: func(c *ValidatorConfig) { c.Grace = -1 }, wantErr: "Grace"},
		{name: "zero cache", mutate: func(c *ValidatorConfig) { c.SeenCacheSize = 0 }, wantErr: "SeenCacheSize"},
		{name: "negative cache", mutate: func(c *ValidatorConfig) { c.SeenCacheSize = -1 }, wantErr: "SeenCacheSize"},
		{name: "negative sender key cache", mutate: func(c *ValidatorConfig) { c.SenderKeyCacheSize = -1 }, wantErr: "SenderKeyCacheSize"},
		{name: "zero config", mutate: func(c *ValidatorConfig) { *c = ValidatorConfig{} }, wantErr: "MaxEnvelopeSize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultValidatorConfig(testNetwork)
			tt.mutate(&cfg)
			err := cfg.Validate()
			v, newErr := NewValidator(cfg)
			if tt.wantErr == "" {
				if err != nil || newErr != nil {
					t.Fatalf("Validate: %v; NewValidator: %v", err, newErr)
				}
				if v.Config() != cfg {
					t.Error("Config() differs from the configuration given")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate = %v, want an error mentioning %s", err, tt.wantErr)
			}
			if newErr == nil || v != nil {
				t.Errorf("NewValidator accepted an invalid config (err %v)", newErr)
			}
		})
	}
}

func TestDefaultValidatorConfig(t *testing.T) {
	c := DefaultValidatorConfig(testNetwork)
	if c.Network != testNetwork || c.MaxEnvelopeSize != MaxEnvelopeSize {
		t.Errorf("default config %+v", c)
	}
	if got, want := c.Window(), c.MaxAge+c.MaxFutureSkew+c.Grace; got != want || got != 3*time.Minute {
		t.Errorf("Window() = %v, want %v (3m)", got, want)
	}
}

func TestVerdictString(t *testing.T) {
	for v, want := range map[Verdict]string{Accept: "accept", Reject: "reject", Ignore: "ignore", Verdict(7): "verdict(7)"} {
		if got := v.String(); got != want {
			t.Errorf("Verdict(%d).String() = %q, want %q", int(v), got, want)
		}
	}
}

func TestVerdictPubSubAndMessageID(t *testing.T) {
	key := testKey(t, 1)
	good, _ := seal(t, key, nil)
	stale, _ := seal(t, key, func(e *Envelope) { e.Time = testNow.Add(-2*time.Minute - time.Second) })
	tests := []struct {
		name string
		raw  []byte
		want pubsub.ValidationResult
	}{
		{"accept", good, pubsub.ValidationAccept},
		{"ignore", stale, pubsub.ValidationIgnore},
		{"reject", flip(good, len(good)-1), pubsub.ValidationReject},
		{"reject garbage", []byte{1, 2, 3}, pubsub.ValidationReject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestValidator(t, nil)
			if got := v.Validate(testNow, "sensors/temp", tt.raw).Verdict.PubSub(); got != tt.want {
				t.Errorf("result %v, want %v", got, tt.want)
			}
			msgID := PubSubMessageID(&pb.Message{Data: tt.raw})
			if id := MessageID(tt.raw); IDFromPubSubMessageID(msgID) != id {
				t.Errorf("PubSubMessageID = %x, want it to start with the envelope ID %s", msgID, id)
			}
			if len(tt.raw) >= identity.SignatureSize && msgID[len(ID{}):] != string(tt.raw[len(tt.raw)-identity.SignatureSize:]) {
				t.Errorf("PubSubMessageID = %x, want the signature after the envelope ID", msgID)
			}
		})
	}
}

func TestSenderKeyCache(t *testing.T) {
	for _, size := range []int{0, 2, 64} {
		t.Run(fmt.Sprintf("size %d", size), func(t *testing.T) {
			v := newTestValidator(t, func(c *ValidatorConfig) { c.SenderKeyCacheSize = size })
			for round := range 2 { // the second round hits the cache where it has room
				for seed := byte(1); seed <= 5; seed++ {
					raw, _ := seal(t, testKey(t, seed), func(e *Envelope) { e.Seq = uint64(round) })
					if r := v.Validate(testNow, "sensors/temp", raw); r.Verdict != Accept {
						t.Fatalf("sender %d round %d: %v %v", seed, round, r.Verdict, r.Err)
					}
				}
			}
			if n := cachedKeys(v); n > size {
				t.Fatalf("%d cached keys, bound %d", n, size)
			}
		})
	}
	// A sender that is not a curve point is rejected and never cached.
	v := newTestValidator(t, nil)
	raw, e := seal(t, testKey(t, 1), nil)
	off := len(raw) - e.EncodedSize() + 1 + 4 + 8 + 8 // sender field
	copy(raw[off:off+32], bytes.Repeat([]byte{0xff}, 32))
	if r := v.Validate(testNow, "sensors/temp", raw); r.Verdict != Reject || !errors.Is(r.Err, ErrBadSignature) {
		t.Fatalf("bad sender key: %v %v", r.Verdict, r.Err)
	}
	if cachedKeys(v) != 0 {
		t.Fatalf("an invalid sender key was cached")
	}
}

// fixedWork is a WorkPolicy with constant targets.
type fixedWork struct{ base, local uint8 }

func (w fixedWork) RequiredWork(time.Time, string) (uint8, uint8) { return w.base, w.local }

func TestValidateWorkPolicy(t *testing.T) {
	key := testKey(t, 1)
	mined := func(target uint8) []byte {
		e := baseEnvelope()
		e.PoWTarget = target
		e.Sender = key.DeviceID()
		mine(t, &e)
		raw, _, err := e.Seal(key)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	tests := []struct {
		name    string
		policy  fixedWork
		target  uint8
		want    Verdict
		wantErr error
	}{
		{"no requirement", fixedWork{0, 0}, 0, Accept, nil},
		{"meets base", fixedWork{4, 4}, 4, Accept, nil},
		{"exceeds local", fixedWork{4, 6}, 8, Accept, nil},
		{"below base", fixedWork{6, 6}, 4, Reject, ErrInsufficientWork},
		{"between base and raised local", fixedWork{4, 8}, 6, Ignore, ErrInsufficientWork},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestValidator(t, func(c *ValidatorConfig) { c.Work = tt.policy })
			r := v.Validate(testNow, "sensors/temp", mined(tt.target))
			if r.Verdict != tt.want || !errors.Is(r.Err, tt.wantErr) {
				t.Fatalf("verdict %v (%v), want %v (%v)", r.Verdict, r.Err, tt.want, tt.wantErr)
			}
			if tt.want != Accept && v.Stats().SignatureChecks != 0 {
				t.Fatal("a work-policy failure cost a signature check")
			}
		})
	}
}

// TestValidateNanosecondBounds: envelope times have millisecond
// resolution but a node's clock does not. Each freshness bound is
// inclusive to the nanosecond: one nanosecond beyond it changes the verdict.
func TestValidateNanosecondBounds(t *testing.T) {
	key := testKey(t, 1)
	cfg := DefaultValidatorConfig(testNetwork)
	for _, tc := range []struct {
		name    string
		offset  time.Duration // envelope time - testNow
		now     time.Duration // validation time - testNow
		want    Verdict
		wantErr error
	}{
		{"MaxAge old", -cfg.MaxAge, 0, Accept, nil},
		{"MaxAge old + 1ns", -cfg.MaxAge, time.Nanosecond, Ignore, ErrStale},
		{"MaxAge+Grace old", -cfg.MaxAge - cfg.Grace, 0, Ignore, ErrStale},
		{"MaxAge+Grace old + 1ns", -cfg.MaxAge - cfg.Grace, time.Nanosecond, Reject, ErrStale},
		{"MaxFutureSkew ahead", cfg.MaxFutureSkew, 0, Accept, nil},
		{"MaxFutureSkew ahead + 1ns", cfg.MaxFutureSkew, -time.Nanosecond, Ignore, ErrFuture},
		{"MaxFutureSkew+Grace ahead", cfg.MaxFutureSkew + cfg.Grace, 0, Ignore, ErrFuture},
		{"MaxFutureSkew+Grace ahead + 1ns", cfg.MaxFutureSkew + cfg.Grace, -time.Nanosecond, Reject, ErrFuture},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, _ := seal(t, key, func(e *Envelope) { e.Time = testNow.Add(tc.offset) })
			r := newTestValidator(t, nil).Validate(testNow.Add(tc.now), "sensors/temp", raw)
			checkResult(t, r, raw, tc.want, tc.wantErr)
		})
	}
}

// cachedKeys returns how many parsed sender keys v holds.
func cachedKeys(v *Validator) int {
	if v.keys == nil {
		return 0
	}
	return v.keys.Len()
}

// TestSharedSignatures: validators sharing a SignatureCache (simulators
// only) verify each (ID, signature) once between them and agree on every
// verdict, a broken signature included; a validator without one verifies
// for itself.
func TestSharedSignatures(t *testing.T) {
	shared := NewSignatureCache()
	withShared := func(c *ValidatorConfig) { c.SharedSignatures = shared }
	good, _ := seal(t, testKey(t, 1), nil)
	bad, _ := seal(t, testKey(t, 2), nil)
	bad = flip(bad, len(bad)-1) // last signature byte
	for _, tc := range []struct {
		name       string
		raw        []byte
		verdict    Verdict
		err        error
		wantShared uint64 // hits of the second sharing validator
	}{
		{"valid", good, Accept, nil, 1},
		{"bad signature", bad, Reject, ErrBadSignature, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first, second := newTestValidator(t, withShared), newTestValidator(t, withShared)
			alone := newTestValidator(t, nil)
			for i, v := range []*Validator{first, second, alone} {
				r := v.Validate(testNow, "sensors/temp", tc.raw)
				if r.Verdict != tc.verdict || (tc.err != nil && !errors.Is(r.Err, tc.err)) {
					t.Fatalf("validator %d: %v %v, want %v %v", i, r.Verdict, r.Err, tc.verdict, tc.err)
				}
			}
			if s := second.Stats(); s.SharedHits != tc.wantShared || s.SignatureChecks != 1 {
				t.Errorf("second validator: %+v, want 1 check answered by the shared cache", s)
			}
			if s := alone.Stats(); s.SharedHits != 0 || s.SignatureChecks != 1 {
				t.Errorf("unshared validator: %+v, want its own check", s)
			}
		})
	}
	if n := shared.Len(); n != 2 {
		t.Errorf("shared cache holds %d verdicts, want 2", n)
	}
}

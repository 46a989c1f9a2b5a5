package gossip

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bitmesh/bitmesh/identity"
	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Verdict is a validation outcome, with GossipSub's three meanings.
type Verdict int

const (
	// Accept: deliver and forward.
	Accept Verdict = iota
	// Reject: drop and penalise the forwarder; an honest forwarder would
	// never have sent this.
	Reject
	// Ignore: drop without penalty; an honest forwarder could have sent this
	// (a duplicate, or a timestamp just past the window after propagation).
	Ignore
)

func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	case Ignore:
		return "ignore"
	}
	return fmt.Sprintf("verdict(%d)", int(v))
}

// WorkPolicy says how much proof of work a topic requires at a time. The
// antispam package's Difficulty implements it. It must be safe for
// concurrent use and must not block.
type WorkPolicy interface {
	// RequiredWork returns the mesh-wide base target for topic and this
	// node's local target (local ≥ base: raised while the topic is busy).
	RequiredWork(now time.Time, topic string) (base, local uint8)
}

// ValidatorConfig sets the validation policy.
type ValidatorConfig struct {
	// Network is the mesh's magic; envelopes of other networks are rejected.
	Network Network
	// MaxEnvelopeSize bounds accepted envelopes, up to the protocol's
	// MaxEnvelopeSize. Smaller limits protect small devices' memory.
	MaxEnvelopeSize int
	// MaxAge is how old an envelope may be. Longer tolerates slower paths
	// and clock drift, but the seen cache must remember IDs this long, so it
	// costs memory at high message rates.
	MaxAge time.Duration
	// MaxFutureSkew is how far ahead of the local clock a timestamp may be.
	MaxFutureSkew time.Duration
	// Grace widens both bounds for the Ignore verdict: an envelope that is
	// outside the window by less than Grace may have been valid when an
	// honest peer forwarded it, so it is ignored rather than rejected.
	Grace time.Duration
	// SeenCacheSize bounds the number of remembered IDs.
	SeenCacheSize int
	// Work, if set, sets the proof of work each topic requires. An envelope
	// committing to less than the base target is rejected (every node knows
	// the mesh's base); one between the base and this node's raised local
	// target is ignored, so honest senders are never penalised for one
	// node's local load. Nil: only the envelope's committed target counts.
	Work WorkPolicy
	// MaxHistoryAge is how much older than the checkpoint that commits to
	// it an envelope recovered by history sync may be (PROTOCOL.md §18.6).
	// Longer recovers longer outages of quiet topics; shorter narrows what
	// a log operator can backdate into other nodes' logs.
	MaxHistoryAge time.Duration
	// SenderKeyCacheSize bounds how many senders' parsed keys are kept.
	// Lifting an x-only key to a point costs a square root (~6 % of a
	// signature check), and a device sends many envelopes; 0 turns the
	// cache off.
	SenderKeyCacheSize int
	// SharedSignatures, for simulators only, shares signature verdicts
	// among the validators of many simulated nodes in one process, so each
	// (ID, signature) is verified once for the whole swarm: in virtual
	// time a check costs real CPU and no simulated time, so sharing it
	// changes no outcome. A real node must leave it nil and verify every
	// signature itself: taking another validator's verdict is trusting
	// whoever wrote it.
	SharedSignatures *SignatureCache
}

// DefaultValidatorConfig returns the policy for network: 1 MiB envelopes, two
// minutes of age, 30 s of clock skew, 30 s of grace, 64 Ki remembered IDs,
// and history up to a week older than its checkpoint.
func DefaultValidatorConfig(network Network) ValidatorConfig {
	return ValidatorConfig{
		Network:            network,
		MaxEnvelopeSize:    MaxEnvelopeSize,
		MaxAge:             2 * time.Minute,
		MaxFutureSkew:      30 * time.Second,
		Grace:              30 * time.Second,
		SeenCacheSize:      1 << 16,
		MaxHistoryAge:      7 * 24 * time.Hour,
		SenderKeyCacheSize: 1 << 12,
	}
}

// Validate reports the first invalid setting.
func (c ValidatorConfig) Validate() error {
	switch {
	case c.MaxEnvelopeSize < MinEnvelopeSize || c.MaxEnvelopeSize > MaxEnvelopeSize:
		return fmt.Errorf("gossip: MaxEnvelopeSize %d outside %d..%d", c.MaxEnvelopeSize, MinEnvelopeSize, MaxEnvelopeSize)
	case c.MaxAge <= 0:
		return errors.New("gossip: MaxAge must be positive")
	case c.MaxHistoryAge < c.MaxAge:
		return errors.New("gossip: MaxHistoryAge must be at least MaxAge")
	case c.MaxFutureSkew < 0 || c.Grace < 0:
		return errors.New("gossip: MaxFutureSkew and Grace must not be negative")
	case c.SeenCacheSize <= 0:
		return errors.New("gossip: SeenCacheSize must be positive")
	case c.SenderKeyCacheSize < 0:
		return errors.New("gossip: SenderKeyCacheSize must not be negative")
	}
	return nil
}

// Window is how long an envelope ID must be remembered to catch every replay
// the freshness check lets through; GossipSub's own seen cache should be at
// least this long.
func (c ValidatorConfig) Window() time.Duration { return c.MaxAge + c.MaxFutureSkew + c.Grace }

// Result is the outcome of validating one envelope.
type Result struct {
	Verdict  Verdict
	Err      error     // nil only for Accept; wraps one of the package sentinels
	ID       ID        // zero if the envelope could not be decoded
	Envelope *Envelope // nil if it could not be decoded
	Cached   bool      // the signature verdict came from the seen cache
}

// Stats counts validator work since creation.
type Stats struct {
	Validated       uint64 // envelopes passed to Validate
	SignatureChecks uint64 // signature verdicts needed (the seen cache missed)
	CacheHits       uint64 // verdicts served from the seen cache
	SharedHits      uint64 // of SignatureChecks, verdicts served by SharedSignatures
}

// Validator runs the validation pipeline as pure decisions: no IO, time as
// an input. It is safe for concurrent access; signature checks run outside
// its lock.
type Validator struct {
	cfg ValidatorConfig // set at creation, never modified

	mu   sync.Mutex // guards seen and keys
	seen *seenCache
	keys *simplelru.LRU[identity.DeviceID, identity.PublicKey] // parsed sender keys; nil when the cache is off

	validated, sigChecks, cacheHits, sharedHits atomic.Uint64
}

// NewValidator returns a validator for cfg.
func NewValidator(cfg ValidatorConfig) (*Validator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := &Validator{cfg: cfg, seen: newSeenCache(cfg.SeenCacheSize, cfg.Window())}
	if cfg.SenderKeyCacheSize > 0 {
		keys, err := simplelru.NewLRU[identity.DeviceID, identity.PublicKey](cfg.SenderKeyCacheSize, nil)
		if err != nil {
			return nil, err
		}
		v.keys = keys
	}
	return v, nil
}

// Config returns the validator's configuration.
func (v *Validator) Config() ValidatorConfig { return v.cfg }

// Stats returns the work counters.
func (v *Validator) Stats() Stats {
	return Stats{Validated: v.validated.Load(), SignatureChecks: v.sigChecks.Load(), CacheHits: v.cacheHits.Load(), SharedHits: v.sharedHits.Load()}
}

// Validate checks raw as an envelope arriving on topic. It runs, in order:
// size → decode → network → topic → freshness → proof of work → seen cache →
// signature → duplicate ID. The cheap checks come first and a duplicate is
// answered from the cache before any signature check, since a BIP-340
// verification costs a thousand hashes. A valid copy of an ID already
// accepted under other signature bytes is ignored with ErrDuplicate, so an
// ID is delivered at most once (PROTOCOL.md §9).
func (v *Validator) Validate(now time.Time, topic string, raw []byte) Result {
	return v.validate(now, topic, raw, time.Time{})
}

// ValidateRecovered checks raw as an entry of another node's log that
// history sync recovered, committed to by a checkpoint that this node
// accepted at committedAt (PROTOCOL.md §18.6). Every check of Validate
// runs, with two differences that make sense only for history: freshness
// is judged against committedAt (the envelope may be at most
// MaxHistoryAge older, and at most MaxFutureSkew newer, with no grace),
// and proof of work against the topic's mesh-wide base target only, since
// this node's raised target reflects its load now, not then. Every failure
// is a Reject: the log operator vouched for the entry.
func (v *Validator) ValidateRecovered(now, committedAt time.Time, topic string, raw []byte) Result {
	return v.validate(now, topic, raw, committedAt)
}

// validate is Validate when committedAt is zero, ValidateRecovered when not.
func (v *Validator) validate(now time.Time, topic string, raw []byte, committedAt time.Time) Result {
	recovered := !committedAt.IsZero()
	v.validated.Add(1)
	if len(raw) > v.cfg.MaxEnvelopeSize {
		// Beyond the protocol limit the forwarder is at fault; beyond only
		// our own, smaller limit it is not.
		verdict := Ignore
		if len(raw) > MaxEnvelopeSize {
			verdict = Reject
		}
		return Result{Verdict: verdict, Err: fmt.Errorf("%w: %d bytes exceeds %d", ErrOversize, len(raw), v.cfg.MaxEnvelopeSize)}
	}
	env, err := Decode(raw)
	if err != nil {
		return Result{Verdict: Reject, Err: err}
	}
	id := MessageID(raw)
	res := Result{ID: id, Envelope: env}
	if env.Network != v.cfg.Network {
		return res.fail(Reject, fmt.Errorf("%w: magic %s, want %s", ErrWrongNetwork, env.Network, v.cfg.Network))
	}
	if env.Topic != topic {
		return res.fail(Reject, fmt.Errorf("%w: %q on %q", ErrWrongTopic, env.Topic, topic))
	}
	if recovered {
		if err := v.checkHistoryTime(committedAt, env.Time); err != nil {
			return res.fail(Reject, err)
		}
	} else if verdict, err := v.checkTime(now, env.Time); err != nil {
		return res.fail(verdict, err)
	}
	if got := id.LeadingZeroBits(); got < int(env.PoWTarget) {
		return res.fail(Reject, fmt.Errorf("%w: %d leading zero bits, committed target %d", ErrInsufficientWork, got, env.PoWTarget))
	}
	if v.cfg.Work != nil {
		base, local := v.cfg.Work.RequiredWork(now, topic)
		if env.PoWTarget < base {
			return res.fail(Reject, fmt.Errorf("%w: committed target %d, topic requires %d", ErrInsufficientWork, env.PoWTarget, base))
		}
		if env.PoWTarget < local && !recovered {
			return res.fail(Ignore, fmt.Errorf("%w: committed target %d, this node currently requires %d", ErrInsufficientWork, env.PoWTarget, local))
		}
	}
	v.mu.Lock()
	cached, ok := v.seen.get(now, id, env.Signature)
	v.mu.Unlock()
	if ok {
		v.cacheHits.Add(1)
		res.Cached = true
		res.Verdict, res.Err = cached.verdict, cached.err
		return res
	}
	v.sigChecks.Add(1)
	entry := seenEntry{sig: env.Signature, verdict: Accept}
	if err := v.verify(env.Sender, id, env.Signature); err != nil {
		entry.verdict, entry.err = Reject, fmt.Errorf("%w: sender %s: %v", ErrBadSignature, env.Sender, err)
	}
	v.mu.Lock()
	acceptedOther := v.seen.put(now, id, entry)
	v.mu.Unlock()
	res.Verdict, res.Err = entry.verdict, entry.err
	// One delivery per ID, whatever the signature bytes. Checked after the
	// signature, under the same lock as the put, so that a forged copy can
	// never shadow the genuine one and two valid copies validated at once
	// cannot both pass. History sync keeps the copy it recovers: its log
	// de-duplicates by ID and nothing is delivered to subscribers.
	if acceptedOther && entry.verdict == Accept && !recovered {
		res.Verdict, res.Err = Ignore, fmt.Errorf("%w: %s", ErrDuplicate, id)
	}
	return res
}

// verify checks sig over id with the sender's key, lifted once per sender
// while it stays in the key cache, or takes the verdict from
// SharedSignatures. Runs outside v.mu but for the lookups.
func (v *Validator) verify(sender identity.DeviceID, id ID, sig identity.Signature) error {
	shared := v.cfg.SharedSignatures
	if shared == nil {
		return v.verifyOwn(sender, id, sig)
	}
	if err, ok := shared.get(id, sig); ok {
		v.sharedHits.Add(1)
		return err
	}
	// Two validators missing at once both verify: the verdicts agree.
	err := v.verifyOwn(sender, id, sig)
	shared.put(id, sig, err)
	return err
}

func (v *Validator) verifyOwn(sender identity.DeviceID, id ID, sig identity.Signature) error {
	if v.keys == nil {
		return identity.VerifyBIP340(sender, id, sig)
	}
	v.mu.Lock()
	pk, ok := v.keys.Get(sender)
	v.mu.Unlock()
	if !ok {
		var err error
		if pk, err = sender.ParsePublicKey(); err != nil {
			return err
		}
		v.mu.Lock()
		v.keys.Add(sender, pk) // drops the least recently used sender when full
		v.mu.Unlock()
	}
	return pk.VerifyHash(id, sig)
}

func (r Result) fail(v Verdict, err error) Result {
	r.Verdict, r.Err = v, err
	return r
}

func (v *Validator) checkTime(now, ts time.Time) (Verdict, error) {
	if ahead := ts.Sub(now); ahead > v.cfg.MaxFutureSkew {
		verdict := Ignore
		if ahead > v.cfg.MaxFutureSkew+v.cfg.Grace {
			verdict = Reject
		}
		return verdict, fmt.Errorf("%w: %v ahead, allowed %v", ErrFuture, ahead.Round(time.Millisecond), v.cfg.MaxFutureSkew)
	}
	if age := now.Sub(ts); age > v.cfg.MaxAge {
		verdict := Ignore
		if age > v.cfg.MaxAge+v.cfg.Grace {
			verdict = Reject
		}
		return verdict, fmt.Errorf("%w: %v old, allowed %v", ErrStale, age.Round(time.Millisecond), v.cfg.MaxAge)
	}
	return Accept, nil
}

// checkHistoryTime is the freshness rule for recovered history: ts within
// [committedAt − MaxHistoryAge, committedAt + MaxFutureSkew].
func (v *Validator) checkHistoryTime(committedAt, ts time.Time) error {
	if ahead := ts.Sub(committedAt); ahead > v.cfg.MaxFutureSkew {
		return fmt.Errorf("%w: %v after the checkpoint that commits to it, allowed %v", ErrFuture, ahead.Round(time.Millisecond), v.cfg.MaxFutureSkew)
	}
	if age := committedAt.Sub(ts); age > v.cfg.MaxHistoryAge {
		return fmt.Errorf("%w: %v before the checkpoint that commits to it, allowed %v", ErrStale, age.Round(time.Millisecond), v.cfg.MaxHistoryAge)
	}
	return nil
}

// MarkVerified records that the envelope (id, sig) carries a valid
// signature, so validating it costs no signature check. A node calls it for
// envelopes it signed itself.
func (v *Validator) MarkVerified(now time.Time, id ID, sig identity.Signature) {
	v.mu.Lock()
	v.seen.put(now, id, seenEntry{sig: sig, verdict: Accept})
	v.mu.Unlock()
}

// SignatureCache holds signature verdicts by (ID, signature) for
// ValidatorConfig.SharedSignatures: simulators only. The ID commits to
// the sender, so the pair alone decides the verdict. It grows with every
// distinct envelope and forgets nothing: it lives as long as one
// simulated run. Safe for concurrent use.
type SignatureCache struct {
	mu sync.RWMutex
	m  map[sigKey]error
}

type sigKey struct {
	id  ID
	sig identity.Signature
}

// NewSignatureCache returns an empty cache.
func NewSignatureCache() *SignatureCache { return &SignatureCache{m: map[sigKey]error{}} }

// Len is the number of verdicts held.
func (c *SignatureCache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

func (c *SignatureCache) get(id ID, sig identity.Signature) (error, bool) {
	c.mu.RLock()
	err, ok := c.m[sigKey{id, sig}]
	c.mu.RUnlock()
	return err, ok
}

func (c *SignatureCache) put(id ID, sig identity.Signature, err error) {
	c.mu.Lock()
	c.m[sigKey{id, sig}] = err
	c.mu.Unlock()
}

package antispam

import (
	"strings"
	"sync"
	"time"

	"github.com/bitmesh/bitmesh/gossip"
	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// DefaultMaxTopics is how many topics' rates an AdaptiveConfig with
// MaxTopics 0 tracks.
const DefaultMaxTopics = 1024

// topicWildcard ends a DifficultyConfig key that covers a topic and every
// topic below it.
const topicWildcard = "/#"

// DifficultyConfig sets the proof-of-work target each topic requires.
//
// The base targets (Default and Topics) are the mesh's rule: every node must
// be configured alike, because a node rejects an envelope that commits to
// less than the base, penalising the peer that forwarded it. Adaptive is
// local: each node raises its own requirement under load.
type DifficultyConfig struct {
	// Default is the base target of topics no key in Topics matches; 0 asks
	// for no work. Each bit doubles every sender's minting time, on the
	// weakest device too.
	Default uint8
	// Topics maps keys to base targets. A key is an exact topic, or a prefix
	// ending in "/#" that covers the topic before it and every topic below:
	// "sensors/#" covers "sensors" and "sensors/temp" but not "sensorsX".
	// The longest matching key wins; an exact key beats a "/#" key of the
	// same topic.
	Topics map[string]uint8
	// Adaptive, if not nil, lets this node raise its local requirement for
	// a topic while the topic's rate exceeds a budget. Nil keeps local equal
	// to base and tracks nothing.
	Adaptive *AdaptiveConfig
}

// AdaptiveConfig sets how a node raises a busy topic's local requirement.
//
// Like Bitcoin's retarget, the requirement is recomputed only at retarget
// points, once per Window, from the number of envelopes observed in the
// Window that just ended: raise = ⌈log2(observed/Budget)⌉, capped at
// MaxRaise, so each raised bit halves the rate a sender mining at the
// requirement can sustain. A raise takes effect at once; it decays by at
// most one bit per Window (and one more per Window without any envelope), so
// a flood that pauses for one Window does not find the door wide open.
type AdaptiveConfig struct {
	// Window is the counting period and the time between retargets. Longer
	// windows smooth bursts but react, and decay, more slowly.
	Window time.Duration
	// Budget is how many envelopes per Window a topic may carry before its
	// requirement rises. Set it above the topic's honest peak: at the budget
	// honest senders meeting only the base start being ignored here.
	Budget int
	// MaxRaise caps the raise in bits. Each bit doubles the work to get an
	// envelope past this node; local never exceeds MaxTarget.
	MaxRaise uint8
	// MaxTopics bounds how many topics' rates are tracked (0 means
	// DefaultMaxTopics); beyond it the least recently observed topic is
	// forgotten, and its raise with it. Each costs about 150 bytes plus
	// the topic.
	MaxTopics int
}

// Validate reports the first invalid setting; the error wraps
// ErrInvalidConfig or ErrTargetTooHigh.
func (c DifficultyConfig) Validate() error {
	if c.Default > MaxTarget {
		return invalidTarget("Default", c.Default)
	}
	for key, target := range c.Topics {
		topic, _ := strings.CutSuffix(key, topicWildcard)
		if err := gossip.ValidTopic(topic); err != nil {
			return invalidConfig("Topics key %q: %v", key, err)
		}
		if target > MaxTarget {
			return invalidTarget("Topics["+key+"]", target)
		}
	}
	if a := c.Adaptive; a != nil {
		switch {
		case a.Window <= 0:
			return invalidConfig("Adaptive.Window %v must be positive", a.Window)
		case a.Budget <= 0:
			return invalidConfig("Adaptive.Budget %d must be positive", a.Budget)
		case a.MaxRaise == 0:
			return invalidConfig("Adaptive.MaxRaise must be positive (use a nil Adaptive for no raise)")
		case a.MaxRaise > MaxTarget:
			return invalidTarget("Adaptive.MaxRaise", a.MaxRaise)
		case a.MaxTopics < 0:
			return invalidConfig("Adaptive.MaxTopics %d must not be negative", a.MaxTopics)
		}
	}
	return nil
}

func invalidTarget(field string, t uint8) error {
	return invalidConfig("%s: %w: %d exceeds %d", field, ErrTargetTooHigh, t, MaxTarget)
}

// Difficulty answers which proof-of-work target a topic requires: the mesh's
// base target and this node's local one, base plus the adaptive raise. It
// is a pure core: time is an argument. Safe for concurrent access.
//
// The validator judges an envelope's committed PoWTarget against both:
//
//   - committed < base: Reject. Every node knows the mesh's base, so the
//     forwarder should have dropped it.
//   - base ≤ committed < local: Ignore. Honest senders cannot see one node's
//     load and must not be penalised for it.
//   - committed ≥ local: pass (the ID must still meet the committed target).
//
// Only the committed target counts: an ID with more zero bits than its
// target proves no more than the target, because the target, not the luck,
// is what the sender signed.
type Difficulty struct {
	// set at creation, never modified
	def      uint8
	exact    map[string]uint8 // Topics keys without "/#"
	prefixes map[string]uint8 // Topics keys with "/#", stored without it
	adaptive *AdaptiveConfig  // a copy; nil when not adaptive

	mu     sync.Mutex                         // guards topics
	topics *simplelru.LRU[string, *topicRate] // most recently observed first; nil when not adaptive
}

// topicRate is one topic's counting window and raise.
type topicRate struct {
	start time.Time // start of the current counting window
	count int       // envelopes observed since start, saturating
	raise uint8     // set at the last retarget
}

// Difficulty's method set is the policy interface gossip's validator takes.
var _ interface {
	RequiredWork(now time.Time, topic string) (base, local uint8)
} = (*Difficulty)(nil)

// NewDifficulty returns the policy for cfg.
func NewDifficulty(cfg DifficultyConfig) (*Difficulty, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Difficulty{
		def:      cfg.Default,
		exact:    make(map[string]uint8),
		prefixes: make(map[string]uint8),
	}
	for key, target := range cfg.Topics {
		if p, ok := strings.CutSuffix(key, topicWildcard); ok {
			d.prefixes[p] = target
		} else {
			d.exact[key] = target
		}
	}
	if cfg.Adaptive != nil {
		a := *cfg.Adaptive
		d.adaptive = &a
		maxTopics := a.MaxTopics
		if maxTopics == 0 {
			maxTopics = DefaultMaxTopics
		}
		var err error
		if d.topics, err = simplelru.NewLRU[string, *topicRate](maxTopics, nil); err != nil {
			return nil, invalidConfig(err.Error())
		}
	}
	return d, nil
}

// Base returns topic's base target: the longest matching key's, else the
// default.
func (d *Difficulty) Base(topic string) uint8 {
	if t, ok := d.exact[topic]; ok {
		return t
	}
	// Candidate prefixes, longest first: the topic itself ("a/#" covers
	// "a"), then the topic cut before each '/' from the right.
	for p := topic; ; {
		if t, ok := d.prefixes[p]; ok {
			return t
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			return d.def
		}
		p = p[:i]
	}
}

// RequiredWork returns topic's base target and this node's local target at
// now (local ≥ base). It does not count an envelope; Observe does.
func (d *Difficulty) RequiredWork(now time.Time, topic string) (base, local uint8) {
	base = d.Base(topic)
	if d.adaptive == nil {
		return base, base
	}
	d.mu.Lock()
	var raise uint8
	if r, ok := d.topics.Peek(topic); ok { // a lookup is not an observation
		d.retarget(now, r)
		raise = r.raise
	}
	d.mu.Unlock()
	return base, uint8(min(int(base)+int(raise), MaxTarget))
}

// Observe counts one envelope on topic at now. Call it for every envelope
// that meets the base, including those ignored for missing the local
// target: the raise must see the offered load. Counting only envelopes that
// pass the local target would hide the very flood the raise is blocking,
// and the raise would fall and rise again every other Window.
func (d *Difficulty) Observe(now time.Time, topic string) {
	if d.adaptive == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.topics.Get(topic)
	if ok {
		d.retarget(now, r)
	} else {
		r = &topicRate{start: now}
		d.topics.Add(topic, r) // drops the least recently observed topic when full
	}
	if r.count < maxWindowCount {
		r.count++
	}
}

// maxWindowCount saturates a window's count so that it cannot overflow on
// 32-bit platforms; raiseFor caps the raise long before it matters.
const maxWindowCount = 1<<31 - 1

// retarget closes r's counting windows that ended by now.
func (d *Difficulty) retarget(now time.Time, r *topicRate) {
	w := d.adaptive.Window
	elapsed := now.Sub(r.start)
	if elapsed < w {
		return // also a clock that stepped back: keep counting
	}
	windows := elapsed / w
	raise := stepRaise(r.raise, raiseFor(r.count, d.adaptive.Budget, d.adaptive.MaxRaise))
	// Each further window ended without an envelope: decay one bit each.
	if empty := windows - 1; empty >= time.Duration(raise) {
		raise = 0
	} else {
		raise -= uint8(empty)
	}
	r.raise, r.count = raise, 0
	r.start = r.start.Add(windows * w)
}

// raiseFor returns ⌈log2(observed/budget)⌉ capped at maxRaise, or 0 when
// observed ≤ budget.
func raiseFor(observed, budget int, maxRaise uint8) uint8 {
	var r uint8
	for b := uint64(budget); r < maxRaise && b < uint64(observed); b <<= 1 {
		r++
	}
	return r
}

// stepRaise moves the current raise toward want: up at once, down one bit.
func stepRaise(current, want uint8) uint8 {
	if want >= current {
		return want
	}
	return current - 1
}

// trackedTopics returns how many topics' rates are kept, for tests.
func (d *Difficulty) trackedTopics() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.topics == nil {
		return 0
	}
	return d.topics.Len()
}

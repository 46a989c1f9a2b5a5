package antispam

import (
	"cmp"
	"container/list"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bitmesh/bitmesh/gossip"
	"github.com/bitmesh/bitmesh/identity"
)

// Misbehaviour is a kind of fault the ledger scores.
type Misbehaviour uint8

// Misbehaviours. The first eight are the classes of a gossip Reject verdict
// (see ClassifyReject) and are blamed on the forwarding peer; the rest come
// from the rate limiters and from protocols still to come.
const (
	Malformed          Misbehaviour = iota + 1 // bytes are not a canonical envelope (gossip.ErrMalformed)
	Oversize                                   // over the protocol's size limits (gossip.ErrOversize)
	WrongNetwork                               // another mesh's magic (gossip.ErrWrongNetwork)
	WrongTopic                                 // envelope topic differs from the pubsub topic (gossip.ErrWrongTopic)
	BadSignature                               // signature does not verify (gossip.ErrBadSignature)
	InsufficientWork                           // proof of work below target (gossip.ErrInsufficientWork)
	Stale                                      // older than the freshness window plus grace: a replay (gossip.ErrStale)
	Future                                     // further ahead than skew plus grace (gossip.ErrFuture)
	RateExceeded                               // a forwarding peer exceeded its rate limit, per excess message
	SenderRateExceeded                         // a sending device exceeded its rate limit, per excess message
	Equivocation                               // reserved: a device signed two conflicting log entries
	CertificateInvalid                         // reserved: admission control rejected a device's certificate
	BadChunk                                   // a peer served an object chunk or manifest that fails its hash (inventory)
	Stalling                                   // a peer took an object request and did not answer in time (inventory)
	InventoryFlood                             // a peer announced more inventory than its budget, or inventory it could not serve (inventory)
	numMisbehaviours                           // end marker, not a misbehaviour
)

var misbehaviourNames = [numMisbehaviours]string{
	Malformed:          "malformed",
	Oversize:           "oversize",
	WrongNetwork:       "wrong-network",
	WrongTopic:         "wrong-topic",
	BadSignature:       "bad-signature",
	InsufficientWork:   "insufficient-work",
	Stale:              "stale",
	Future:             "future",
	RateExceeded:       "rate-exceeded",
	SenderRateExceeded: "sender-rate-exceeded",
	Equivocation:       "equivocation",
	CertificateInvalid: "certificate-invalid",
	BadChunk:           "bad-chunk",
	Stalling:           "stalling",
	InventoryFlood:     "inventory-flood",
}

func (m Misbehaviour) String() string {
	if m.valid() {
		return misbehaviourNames[m]
	}
	return fmt.Sprintf("misbehaviour(%d)", uint8(m))
}

func (m Misbehaviour) valid() bool { return m > 0 && m < numMisbehaviours }

// ClassifyReject maps the error of a gossip Reject verdict to the
// misbehaviour to record against the forwarding peer. It reports false for
// nil and for errors that wrap none of gossip's sentinels. Only call it for
// Reject verdicts: an Ignore verdict wraps the same sentinels but blames no
// one (see ClassifyResult).
func ClassifyReject(err error) (Misbehaviour, bool) {
	switch {
	case err == nil:
		return 0, false
	case errors.Is(err, gossip.ErrMalformed):
		return Malformed, true
	case errors.Is(err, gossip.ErrOversize):
		return Oversize, true
	case errors.Is(err, gossip.ErrWrongNetwork):
		return WrongNetwork, true
	case errors.Is(err, gossip.ErrWrongTopic):
		return WrongTopic, true
	case errors.Is(err, gossip.ErrBadSignature):
		return BadSignature, true
	case errors.Is(err, gossip.ErrInsufficientWork):
		return InsufficientWork, true
	case errors.Is(err, gossip.ErrStale):
		return Stale, true
	case errors.Is(err, gossip.ErrFuture):
		return Future, true
	}
	return 0, false
}

// ClassifyResult is ClassifyReject for a whole validation result: Accept and
// Ignore verdicts report false.
func ClassifyResult(r gossip.Result) (Misbehaviour, bool) {
	if r.Verdict != gossip.Reject {
		return 0, false
	}
	return ClassifyReject(r.Err)
}

// SubjectKind says what a Subject names.
type SubjectKind uint8

// Subject kinds. Their values are stored in ban records; never renumber.
const (
	SubjectPeer   SubjectKind = 1 // a libp2p peer: the neighbour that forwarded
	SubjectDevice SubjectKind = 2 // a device: the signer of envelopes
)

func (k SubjectKind) String() string {
	switch k {
	case SubjectPeer:
		return "peer"
	case SubjectDevice:
		return "device"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

func (k SubjectKind) valid() bool { return k == SubjectPeer || k == SubjectDevice }

// Subject is who a score or ban is about. Peers and devices are scored
// independently even when a peer ID and a device ID name the same key:
// forwarding faults and sending faults are different offences.
type Subject struct {
	Kind SubjectKind
	ID   string // peer.ID.String() or identity.DeviceID.String()
}

// PeerSubject names a forwarding peer.
func PeerSubject(p peer.ID) Subject { return Subject{Kind: SubjectPeer, ID: p.String()} }

// DeviceSubject names a sending device.
func DeviceSubject(d identity.DeviceID) Subject {
	return Subject{Kind: SubjectDevice, ID: d.String()}
}

func (s Subject) String() string { return s.Kind.String() + ":" + s.ID }

// PeerID returns the libp2p peer the subject names: the peer itself, or
// the peer of the device's key (device and peer are one key).
func (s Subject) PeerID() (peer.ID, error) {
	switch s.Kind {
	case SubjectPeer:
		return peer.Decode(s.ID)
	case SubjectDevice:
		d, err := identity.ParseDeviceID(s.ID)
		if err != nil {
			return "", err
		}
		return d.PeerID()
	}
	return "", fmt.Errorf("antispam: subject %s names no peer", s)
}

func compareSubjects(a, b Subject) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID))
}

// MaxBanDuration caps manual bans so Until stays storable; ten years is
// "permanent" for any deployment.
const MaxBanDuration = 10 * 365 * 24 * time.Hour

// LedgerConfig sets the scoring and ban policy.
type LedgerConfig struct {
	// Table gives each misbehaviour's penalty.
	Table ScoreTable
	// BanThreshold is the score at which a subject is banned. Lower bans
	// sooner on fewer faults; the table is scaled to 100.
	BanThreshold uint32
	// BanDuration is how long an automatic ban lasts. Longer keeps a
	// hostile peer out for longer, but also a misconfigured honest one
	// until an operator unbans it.
	BanDuration time.Duration
	// HalfLife of transient scores. Longer makes bursts count for longer
	// (a lower sustained rate bans); shorter forgives sooner.
	HalfLife time.Duration
	// MaxTracked bounds the unbanned subjects whose scores are kept in
	// memory (about 250 bytes each). When full, the lowest-scoring of the
	// least recently scored subjects is forgotten. Banned subjects do not
	// count and are never evicted: forgetting a ban would let the subject
	// straight back in. Smaller saves memory but lets an attacker that
	// cycles through many identities push out the scores of others.
	MaxTracked int
	// OnBan, if set, is called once each time a subject becomes banned by
	// Record or Ban, so the node can disconnect the peer or drop the
	// device's traffic. It is called without the ledger's lock held, on the
	// goroutine that caused the ban, before the ban is written to the
	// store; it must not block (hand slow work to another goroutine) and
	// may call the Ledger.
	OnBan func(Ban)
}

// DefaultLedgerConfig returns btcd's policy: threshold 100, 24 h bans,
// transient scores halving every 60 s, 65536 tracked subjects, and
// DefaultScoreTable.
func DefaultLedgerConfig() LedgerConfig {
	return LedgerConfig{
		Table:        DefaultScoreTable(),
		BanThreshold: 100,
		BanDuration:  24 * time.Hour,
		HalfLife:     DefaultHalfLife,
		MaxTracked:   1 << 16,
	}
}

// Validate reports the first invalid setting; the error wraps
// ErrInvalidConfig.
func (c LedgerConfig) Validate() error {
	switch {
	case c.Table == nil:
		return invalidConfig("ledger Table is nil")
	case c.BanThreshold == 0:
		return invalidConfig("ledger BanThreshold must be positive")
	case c.BanDuration <= 0 || c.BanDuration > MaxBanDuration:
		return invalidConfig("ledger BanDuration %v outside (0, %v]", c.BanDuration, MaxBanDuration)
	case c.HalfLife <= 0:
		return invalidConfig("ledger HalfLife must be positive")
	case c.MaxTracked <= 0:
		return invalidConfig("ledger MaxTracked must be positive")
	}
	for m := range c.Table {
		if !m.valid() {
			return invalidConfig("ledger Table has unknown %v", m)
		}
	}
	return nil
}

// Ban is a subject's exclusion, in force from Since until (not including)
// Until.
type Ban struct {
	Subject Subject
	Until   time.Time
	Reason  string
	Since   time.Time
}

// Active reports whether the ban is in force at now.
func (b Ban) Active(now time.Time) bool { return now.Before(b.Until) }

// SubjectScore is one line of a scores listing.
type SubjectScore struct {
	Subject Subject
	Score   uint32
	Banned  bool
}

// evictSample is how many of the least recently scored subjects eviction
// compares, dropping the lowest score among them: recency alone would let
// an attacker flush a subject that is one fault from a ban by scoring a
// crowd of fresh identities; a full scan would cost O(MaxTracked).
const evictSample = 8

// tracked is one subject's state.
type tracked struct {
	subject Subject
	score   BanScore
	ban     *Ban          // nil unless banned (possibly expired, not yet pruned)
	elem    *list.Element // in Ledger.lru while unbanned; nil while banned
}

// Ledger scores misbehaviour per subject and bans subjects whose score
// reaches the threshold, as btcd's DynamicBanScore does per peer. It does no
// IO of its own beyond its BanStore and never reads the clock: every method
// takes now. It is safe for concurrent access.
//
// Expired bans are dropped lazily by the methods that meet them and from
// the store by Prune, which the node should call now and then (a minute is
// plenty). When a ban ends the subject starts again from a zero score.
type Ledger struct {
	cfg   LedgerConfig // set at creation, never modified
	store BanStore     // set at creation, never modified

	// storeLocks serialise store writes per subject. Each write stores the
	// subject's ban as it is in memory at the time of writing (see
	// persist), so concurrent Ban and Unban calls on one subject leave the
	// store agreeing with memory; writes for different subjects run
	// concurrently, so a store that batches (BoltStore) lets a burst of bans
	// share commits.
	storeLocksMu sync.Mutex // guards storeLocks
	storeLocks   map[Subject]*subjectLock

	mu       sync.Mutex // guards subjects, lru and unstored below
	subjects map[Subject]*tracked
	lru      list.List            // unbanned subjects, most recently scored first
	unstored map[Subject]struct{} // expired bans dropped from memory but not yet from the store
}

// NewLedger returns a ledger with the bans in store that are still active at
// now; expired ones are deleted from the store. A nil store keeps bans in
// memory only. The caller keeps ownership of store and closes it after the
// last use of the Ledger.
//
// If some stored records are corrupt, NewLedger returns a working Ledger
// with the readable bans together with an error wrapping ErrCorruptBan,
// which the caller should log; any other error returns no Ledger.
func NewLedger(now time.Time, cfg LedgerConfig, store BanStore) (*Ledger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil {
		store = NewMemoryStore()
	}
	l := &Ledger{
		cfg:        cfg,
		store:      store,
		subjects:   make(map[Subject]*tracked),
		unstored:   make(map[Subject]struct{}),
		storeLocks: make(map[Subject]*subjectLock),
	}
	bans, loadErr := store.Load()
	if loadErr != nil && !errors.Is(loadErr, ErrCorruptBan) {
		return nil, fmt.Errorf("antispam: loading bans: %w", loadErr)
	}
	var expired []Subject
	for _, b := range bans {
		if !b.Active(now) {
			expired = append(expired, b.Subject)
			continue
		}
		l.subjects[b.Subject] = &tracked{subject: b.Subject, score: BanScore{HalfLife: cfg.HalfLife}, ban: &b}
	}
	// No other call can hold a subject lock yet: write without them.
	if err := l.writeStates(expired, nil); err != nil {
		for _, s := range expired {
			l.unstored[s] = struct{}{} // Prune retries
		}
	}
	return l, loadErr
}

// Config returns the ledger's configuration.
func (l *Ledger) Config() LedgerConfig { return l.cfg }

// Record scores one occurrence of m by s at now and returns s's new score.
// newlyBanned is true for exactly the call that takes the score to the
// threshold; that call also invokes OnBan and stores the ban. Records
// against a subject already banned change nothing and return false. err
// comes only from the store; the ban is in force in memory even then.
func (l *Ledger) Record(now time.Time, s Subject, m Misbehaviour) (score uint32, newlyBanned bool, err error) {
	p := l.cfg.Table[m]
	l.mu.Lock()
	t := l.liveLocked(now, s)
	if t != nil && t.ban != nil {
		score = t.score.Int(now)
		l.mu.Unlock()
		return score, false, nil
	}
	if p == (Penalty{}) {
		if t != nil {
			score = t.score.Int(now)
		}
		l.mu.Unlock()
		return score, false, nil
	}
	if t == nil {
		t = l.trackLocked(now, s)
	} else {
		l.lru.MoveToFront(t.elem)
	}
	score = t.score.Increase(now, p.Persistent, p.Transient)
	if score < l.cfg.BanThreshold {
		l.mu.Unlock()
		return score, false, nil
	}
	reason := fmt.Sprintf("score %d reached %d on %v", score, l.cfg.BanThreshold, m)
	b := l.banLocked(now, t, l.cfg.BanDuration, reason)
	l.mu.Unlock()
	l.notify(b)
	return score, true, l.persist(s)
}

// Score returns s's score at now (0 for a subject never scored or
// forgotten).
func (l *Ledger) Score(now time.Time, s Subject) uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.liveLocked(now, s); t != nil {
		return t.score.Int(now)
	}
	return 0
}

// Banned returns s's ban if one is in force at now.
func (l *Ledger) Banned(now time.Time, s Subject) (Ban, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.liveLocked(now, s); t != nil && t.ban != nil {
		return *t.ban, true
	}
	return Ban{}, false
}

// Ban bans s from now for d (d ≤ 0 means the configured BanDuration; d is
// capped at MaxBanDuration), replacing any ban s already has. Reason is
// truncated to MaxReasonLen bytes. OnBan is called if s was not already
// banned. The error wraps ErrInvalidBan for a subject that cannot be
// stored (nothing changes then), or comes from the store (the ban is in
// force in memory even then).
func (l *Ledger) Ban(now time.Time, s Subject, d time.Duration, reason string) error {
	if _, err := encodeBanKey(s); err != nil {
		return err
	}
	if d <= 0 {
		d = l.cfg.BanDuration
	}
	d = min(d, MaxBanDuration)
	l.mu.Lock()
	t := l.liveLocked(now, s)
	wasBanned := t != nil && t.ban != nil
	if t == nil {
		t = &tracked{subject: s, score: BanScore{HalfLife: l.cfg.HalfLife}}
		l.subjects[s] = t
	}
	b := l.banLocked(now, t, d, reason)
	l.mu.Unlock()
	if !wasBanned {
		l.notify(b)
	}
	return l.persist(s)
}

// Unban lifts s's ban, if any, and resets its score. The error comes from
// the store; s is unbanned in memory even then.
func (l *Ledger) Unban(s Subject) error {
	l.mu.Lock()
	if t := l.subjects[s]; t != nil {
		l.forgetLocked(t)
	}
	delete(l.unstored, s)
	l.mu.Unlock()
	return l.persist(s)
}

// Bans returns the bans in force at now, sorted by subject.
func (l *Ledger) Bans(now time.Time) []Ban {
	l.mu.Lock()
	defer l.mu.Unlock()
	var bans []Ban
	for _, t := range l.subjects {
		if t.ban == nil {
			continue
		}
		if !t.ban.Active(now) {
			l.expireLocked(t)
			continue
		}
		bans = append(bans, *t.ban)
	}
	slices.SortFunc(bans, func(a, b Ban) int { return compareSubjects(a.Subject, b.Subject) })
	return bans
}

// Scores returns every subject with a non-zero score or a ban in force at
// now, highest score first (then by subject), for listings such as
// `bitmesh peers`.
func (l *Ledger) Scores(now time.Time) []SubjectScore {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []SubjectScore
	for _, t := range l.subjects {
		if t.ban != nil && !t.ban.Active(now) {
			l.expireLocked(t)
			continue
		}
		sc := t.score.Int(now)
		if sc == 0 && t.ban == nil {
			continue
		}
		out = append(out, SubjectScore{Subject: t.subject, Score: sc, Banned: t.ban != nil})
	}
	slices.SortFunc(out, func(a, b SubjectScore) int {
		return cmp.Or(cmp.Compare(b.Score, a.Score), compareSubjects(a.Subject, b.Subject))
	})
	return out
}

// Tracked returns how many subjects the ledger holds: unbanned scored ones
// (at most MaxTracked) and banned ones.
func (l *Ledger) Tracked() (scored, banned int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len(), len(l.subjects) - l.lru.Len()
}

// Prune drops bans expired at now, from memory and from the store, and
// forgets subjects whose score has decayed to zero. It returns how many
// bans it deleted from the store; the error joins the store's failures,
// which the next Prune retries.
func (l *Ledger) Prune(now time.Time) (int, error) {
	l.mu.Lock()
	for _, t := range l.subjects {
		switch {
		case t.ban != nil && !t.ban.Active(now):
			l.expireLocked(t)
		case t.ban == nil && t.score.Int(now) == 0:
			l.forgetLocked(t)
		}
	}
	pending := make([]Subject, 0, len(l.unstored))
	for s := range l.unstored {
		pending = append(pending, s)
	}
	clear(l.unstored)
	l.mu.Unlock()

	if len(pending) == 0 {
		return 0, nil
	}
	// Lock in a fixed order: other writers hold one subject lock at a time,
	// so this cannot deadlock with them.
	slices.SortFunc(pending, compareSubjects)
	for _, s := range pending {
		defer l.lockSubject(s)()
	}
	var bans []Ban
	l.mu.Lock()
	for _, s := range pending {
		if t := l.subjects[s]; t != nil && t.ban != nil {
			bans = append(bans, *t.ban) // banned again since it expired
		}
	}
	l.mu.Unlock()
	if err := l.writeStates(pending, bans); err != nil {
		l.mu.Lock()
		for _, s := range pending {
			if l.subjects[s] == nil {
				l.unstored[s] = struct{}{}
			}
		}
		l.mu.Unlock()
		return 0, err
	}
	return len(pending), nil
}

// writeStates stores bans and deletes the other subjects of subjects,
// in one commit if the store is a BatchBanStore. The caller holds the
// subjects' locks (or no one else can write yet).
func (l *Ledger) writeStates(subjects []Subject, bans []Ban) error {
	if len(subjects) == 0 {
		return nil
	}
	put := make(map[Subject]bool, len(bans))
	for _, b := range bans {
		put[b.Subject] = true
	}
	var dels []Subject
	for _, s := range subjects {
		if !put[s] {
			dels = append(dels, s)
		}
	}
	if bs, ok := l.store.(BatchBanStore); ok {
		return bs.Apply(bans, dels)
	}
	var errs []error
	for _, b := range bans {
		errs = append(errs, l.store.Put(b))
	}
	for _, s := range dels {
		errs = append(errs, l.store.Delete(s))
	}
	return errors.Join(errs...)
}

// subjectLock is one subject's store-write lock; refs counts its holders
// and waiters, so it is dropped from Ledger.storeLocks when unused.
type subjectLock struct {
	mu   sync.Mutex
	refs int // guarded by Ledger.storeLocksMu
}

// lockSubject takes s's store-write lock and returns its release.
func (l *Ledger) lockSubject(s Subject) (unlock func()) {
	l.storeLocksMu.Lock()
	sl := l.storeLocks[s]
	if sl == nil {
		sl = &subjectLock{}
		l.storeLocks[s] = sl
	}
	sl.refs++
	l.storeLocksMu.Unlock()
	sl.mu.Lock()
	return func() {
		sl.mu.Unlock()
		l.storeLocksMu.Lock()
		if sl.refs--; sl.refs == 0 {
			delete(l.storeLocks, s)
		}
		l.storeLocksMu.Unlock()
	}
}

// liveLocked returns s's state, first dropping a ban that expired by now.
func (l *Ledger) liveLocked(now time.Time, s Subject) *tracked {
	t := l.subjects[s]
	if t != nil && t.ban != nil && !t.ban.Active(now) {
		l.expireLocked(t)
		return nil
	}
	return t
}

// trackLocked starts scoring s, evicting another subject if MaxTracked are
// already scored.
func (l *Ledger) trackLocked(now time.Time, s Subject) *tracked {
	if l.lru.Len() >= l.cfg.MaxTracked {
		l.evictLocked(now)
	}
	t := &tracked{subject: s, score: BanScore{HalfLife: l.cfg.HalfLife}}
	t.elem = l.lru.PushFront(t)
	l.subjects[s] = t
	return t
}

// evictLocked forgets the lowest-scoring of the evictSample least recently
// scored subjects (the least recent on ties). Banned subjects are not in
// lru, so they are never candidates.
func (l *Ledger) evictLocked(now time.Time) {
	var victim *tracked
	var low uint32
	e := l.lru.Back()
	for i := 0; i < evictSample && e != nil; i, e = i+1, e.Prev() {
		t := e.Value.(*tracked)
		if sc := t.score.Int(now); victim == nil || sc < low {
			victim, low = t, sc
		}
	}
	if victim != nil {
		l.forgetLocked(victim)
	}
}

// banLocked puts t under a ban from now for d and returns the ban.
func (l *Ledger) banLocked(now time.Time, t *tracked, d time.Duration, reason string) Ban {
	since := now.Round(0) // wall clock only: the ban is stored and compared across restarts
	t.ban = &Ban{Subject: t.subject, Since: since, Until: since.Add(d), Reason: truncateUTF8(reason, MaxReasonLen)}
	if t.elem != nil {
		l.lru.Remove(t.elem)
		t.elem = nil
	}
	delete(l.unstored, t.subject)
	return *t.ban
}

// expireLocked drops t's expired ban and its score; the store still holds
// the ban until Prune deletes it.
func (l *Ledger) expireLocked(t *tracked) {
	l.forgetLocked(t)
	l.unstored[t.subject] = struct{}{}
}

func (l *Ledger) forgetLocked(t *tracked) {
	if t.elem != nil {
		l.lru.Remove(t.elem)
		t.elem = nil
	}
	delete(l.subjects, t.subject)
}

func (l *Ledger) notify(b Ban) {
	if l.cfg.OnBan != nil {
		l.cfg.OnBan(b)
	}
}

// persist writes s's current in-memory ban to the store, or deletes it if s
// has none. Reading the state under s's store lock, rather than passing it
// in, makes the last write reflect the last change whatever order
// concurrent callers reach the store in.
func (l *Ledger) persist(s Subject) error {
	defer l.lockSubject(s)()
	l.mu.Lock()
	var b Ban
	t := l.subjects[s]
	banned := t != nil && t.ban != nil
	if banned {
		b = *t.ban
	}
	l.mu.Unlock()
	if banned {
		return l.store.Put(b)
	}
	return l.store.Delete(s)
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

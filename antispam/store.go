package antispam

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/bitmesh/bitmesh/internal/storecheck"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// BanStore persists bans so that a restarted node keeps refusing the peers
// and devices it banned. The Ledger calls it outside its own lock, and only
// when a ban starts, ends or changes, so a store may be slow (one fsync per
// write) without slowing scoring. Writes for one subject come one at a
// time; writes for different subjects may be concurrent, so a store must be
// safe for concurrent use (and may batch them: see BoltStore).
type BanStore interface {
	// Put stores b, replacing any ban of the same subject.
	Put(b Ban) error
	// Delete removes the subject's ban; deleting an absent ban is not an
	// error.
	Delete(s Subject) error
	// Load returns every stored ban it can decode, expired ones included
	// (the Ledger drops those). Records it cannot decode are skipped and
	// reported in an error wrapping ErrCorruptBan, returned together with
	// the good bans; any other error means nothing could be read.
	Load() ([]Ban, error)
	// Close releases the store; later calls fail with ErrStoreClosed.
	Close() error
}

// BatchBanStore is a BanStore that can apply many writes in one durable
// transaction. The Ledger uses it, when its store has it, to drop many
// expired bans at once (at NewLedger and Prune) for the cost of one write.
type BatchBanStore interface {
	BanStore
	// Apply stores puts and deletes dels atomically and returns only once
	// both are durable. A subject in both is deleted.
	Apply(puts []Ban, dels []Subject) error
}

var (
	_ BatchBanStore = (*MemoryStore)(nil)
	_ BatchBanStore = (*BoltStore)(nil)
)

// Limits of the stored record, checked before anything is allocated.
const (
	// MaxSubjectIDLen bounds a subject's ID: libp2p peer IDs are about 52
	// characters and device IDs 63, so 128 leaves room without letting a
	// record grow unbounded.
	MaxSubjectIDLen = 128
	// MaxReasonLen bounds a ban's reason in bytes; the Ledger truncates
	// longer reasons (at a UTF-8 boundary) before storing them.
	MaxReasonLen = 256
	// banRecordVersion is the value encoding below; a new layout gets a new
	// version so old records still decode. Version 1 is version 2 without
	// the checksum: it still decodes, and is rewritten as 2 on the next Put.
	banRecordVersion = 2
	banRecordV1      = 1
	// banHeaderLen: version, since, until, reason length.
	banHeaderLen = 1 + 8 + 8 + 2
	// banSumLen: the CRC-32C of key and value that ends a version 2 value.
	banSumLen = 4
)

// banSumTable is CRC-32C (Castagnoli): a bbolt value has no checksum of its
// own, so without this a flipped byte on disk would silently shorten or
// lengthen a ban or change its subject.
var banSumTable = crc32.MakeTable(crc32.Castagnoli)

func banSum(key, body []byte) uint32 {
	return crc32.Update(crc32.Checksum(key, banSumTable), banSumTable, body)
}

// Bans are stored as nanoseconds since the Unix epoch, so only times that
// fit an int64 of nanoseconds (years 1678 to 2262) can be stored.
var (
	minStorableTime = time.Unix(0, math.MinInt64)
	maxStorableTime = time.Unix(0, math.MaxInt64)
)

// encodeBanKey returns kind byte || ID, the record's key.
func encodeBanKey(s Subject) ([]byte, error) {
	if !s.Kind.valid() {
		return nil, fmt.Errorf("%w: subject kind %d", ErrInvalidBan, s.Kind)
	}
	if len(s.ID) == 0 || len(s.ID) > MaxSubjectIDLen {
		return nil, fmt.Errorf("%w: subject ID of %d bytes, want 1..%d", ErrInvalidBan, len(s.ID), MaxSubjectIDLen)
	}
	k := make([]byte, 0, 1+len(s.ID))
	k = append(k, byte(s.Kind))
	return append(k, s.ID...), nil
}

// encodeBan returns the record's key and value. The value (version 2) is
//
//	version (2) | since (int64 ns, big-endian) | until (int64 ns) |
//	reason length (uint16) | reason | CRC-32C of key and the bytes before
func encodeBan(b Ban) (key, value []byte, err error) {
	key, err = encodeBanKey(b.Subject)
	if err != nil {
		return nil, nil, err
	}
	for _, t := range []time.Time{b.Since, b.Until} {
		if t.Before(minStorableTime) || t.After(maxStorableTime) {
			return nil, nil, fmt.Errorf("%w: time %v outside the storable range", ErrInvalidBan, t)
		}
	}
	if !b.Until.After(b.Since) {
		return nil, nil, fmt.Errorf("%w: until %v not after since %v", ErrInvalidBan, b.Until, b.Since)
	}
	if len(b.Reason) > MaxReasonLen {
		return nil, nil, fmt.Errorf("%w: reason of %d bytes, limit %d", ErrInvalidBan, len(b.Reason), MaxReasonLen)
	}
	v := make([]byte, banHeaderLen, banHeaderLen+len(b.Reason)+banSumLen)
	v[0] = banRecordVersion
	binary.BigEndian.PutUint64(v[1:], uint64(b.Since.UnixNano()))
	binary.BigEndian.PutUint64(v[9:], uint64(b.Until.UnixNano()))
	binary.BigEndian.PutUint16(v[17:], uint16(len(b.Reason)))
	v = append(v, b.Reason...)
	return key, binary.BigEndian.AppendUint32(v, banSum(key, v)), nil
}

// decodeBan is the inverse of encodeBan. Every size is checked before the
// bytes are copied, and any inconsistency is a *RecordError: a stored record
// comes from our own disk, but a disk can be damaged or edited.
func decodeBan(key, value []byte) (Ban, error) {
	var b Ban
	if len(key) < 2 || len(key) > 1+MaxSubjectIDLen {
		return b, corrupt(key, "key", "%d bytes, want 2..%d", len(key), 1+MaxSubjectIDLen)
	}
	if k := SubjectKind(key[0]); !k.valid() {
		return b, corrupt(key, "kind", "unknown subject kind %d", key[0])
	}
	if len(value) < banHeaderLen {
		return b, corrupt(key, "header", "%d bytes, want at least %d", len(value), banHeaderLen)
	}
	sumLen := 0
	switch value[0] {
	case banRecordVersion:
		sumLen = banSumLen
	case banRecordV1:
	default:
		return b, corrupt(key, "version", "unsupported version %d", value[0])
	}
	n := int(binary.BigEndian.Uint16(value[17:]))
	if n > MaxReasonLen {
		return b, corrupt(key, "reason", "length %d exceeds %d", n, MaxReasonLen)
	}
	if len(value) != banHeaderLen+n+sumLen {
		return b, corrupt(key, "length", "%d bytes, header says %d", len(value), banHeaderLen+n+sumLen)
	}
	since := int64(binary.BigEndian.Uint64(value[1:]))
	until := int64(binary.BigEndian.Uint64(value[9:]))
	if until <= since {
		return b, corrupt(key, "until", "%d not after since %d", until, since)
	}
	if sumLen > 0 {
		body := value[:banHeaderLen+n]
		if got, want := binary.BigEndian.Uint32(value[len(body):]), banSum(key, body); got != want {
			return b, corrupt(key, "checksum", "CRC-32C %08x, record hashes to %08x", got, want)
		}
	}
	b.Subject = Subject{Kind: SubjectKind(key[0]), ID: string(key[1:])}
	b.Since = time.Unix(0, since).UTC()
	b.Until = time.Unix(0, until).UTC()
	b.Reason = string(value[banHeaderLen : banHeaderLen+n])
	return b, nil
}

// MemoryStore is a BanStore in memory, for tests and simulations. It stores
// the same encoded records as BoltStore, so it accepts and rejects exactly
// the same bans and returns the same (UTC, nanosecond) times. It is safe for
// concurrent access.
type MemoryStore struct {
	mu      sync.Mutex // guards records and closed
	records map[string][]byte
	closed  bool
}

var (
	_ BanStore = (*MemoryStore)(nil)
	_ BanStore = (*BoltStore)(nil)
)

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{records: make(map[string][]byte)}
}

// Put implements BanStore.
func (m *MemoryStore) Put(b Ban) error { return m.Apply([]Ban{b}, nil) }

// Delete implements BanStore.
func (m *MemoryStore) Delete(s Subject) error { return m.Apply(nil, []Subject{s}) }

// Apply implements BatchBanStore.
func (m *MemoryStore) Apply(puts []Ban, dels []Subject) error {
	recs, keys, err := encodeBatch(puts, dels)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrStoreClosed
	}
	for _, r := range recs {
		m.records[string(r[0])] = r[1]
	}
	for _, k := range keys {
		delete(m.records, string(k))
	}
	return nil
}

// encodeBatch encodes an Apply's records and keys, all before any is
// written, so an invalid one writes nothing.
func encodeBatch(puts []Ban, dels []Subject) (recs [][2][]byte, keys [][]byte, err error) {
	for _, b := range puts {
		k, v, err := encodeBan(b)
		if err != nil {
			return nil, nil, err
		}
		recs = append(recs, [2][]byte{k, v})
	}
	for _, s := range dels {
		k, err := encodeBanKey(s)
		if err != nil {
			return nil, nil, err
		}
		keys = append(keys, k)
	}
	return recs, keys, nil
}

// Load implements BanStore; bans come sorted by key, as from BoltStore.
func (m *MemoryStore) Load() ([]Ban, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrStoreClosed
	}
	keys := make([]string, 0, len(m.records))
	for k := range m.records {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var bans []Ban
	var errs []error
	for _, k := range keys {
		b, err := decodeBan([]byte(k), m.records[k])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		bans = append(bans, b)
	}
	return bans, errors.Join(errs...)
}

// Close implements BanStore.
func (m *MemoryStore) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// putRaw stores a record as given, bypassing encodeBan: tests use it to
// plant corrupt records.
func (m *MemoryStore) putRaw(key, value []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.records[string(key)] = append([]byte(nil), value...)
}

// banBucket holds one record per banned subject.
var banBucket = []byte("bans")

// boltLockTimeout is how long OpenBoltStore waits for the file lock: long
// enough to ride out a previous instance that is still closing, short enough
// that a second node on the same directory fails at once with a clear error
// instead of hanging (bbolt waits forever by default).
const boltLockTimeout = time.Second

// BoltStore is a BanStore in a bbolt file. Every Put and Delete returns
// only once it is committed (fsynced): a ban must survive a crash right
// after it was decided. Concurrent Puts and Deletes share commits (bbolt's
// db.Batch: a write waits up to boltBatchDelay for others to join), so a
// burst of bans from many goroutines costs a few fsyncs, not one each. It is
// safe for concurrent access.
type BoltStore struct {
	db   *bolt.DB // set at creation; bbolt reports use after Close
	path string   // set at creation, never modified
}

// boltBatchDelay is how long a Put or Delete waits for others to share its
// commit: short next to an fsync on flash (several ms), long enough for the
// goroutines of one burst of misbehaviour to join.
const boltBatchDelay = 2 * time.Millisecond

// OpenBoltStore opens or creates the store at path with mode 0600 (bans name
// peers and devices; other users need not read them). It fails with an
// error wrapping ErrStoreLocked if another process has the file open, and
// with one wrapping ErrStoreDamaged, naming the file and the repair command,
// if the file exists but is damaged (empty, cut short, invalid meta pages, a
// failed bbolt consistency check): a ban list silently started afresh would
// let every banned peer back in.
func OpenBoltStore(path string) (*BoltStore, error) {
	return openBoltStore(path, boltLockTimeout)
}

func openBoltStore(path string, timeout time.Duration) (*BoltStore, error) {
	opts := *bolt.DefaultOptions
	opts.Timeout = timeout
	db, err := storecheck.Open(path, 0o600, &opts)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s (no lock within %v)", ErrStoreLocked, path, timeout)
	}
	if errors.Is(err, storecheck.ErrDamaged) {
		return nil, fmt.Errorf("antispam: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("antispam: opening ban store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(banBucket)
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("antispam: preparing ban store %s: %w", path, err)
	}
	db.MaxBatchDelay = boltBatchDelay
	return &BoltStore{db: db, path: path}, nil
}

// Put implements BanStore.
func (s *BoltStore) Put(b Ban) error {
	k, v, err := encodeBan(b)
	if err != nil {
		return err
	}
	return s.update(func(bk *bolt.Bucket) error { return bk.Put(k, v) })
}

// Delete implements BanStore.
func (s *BoltStore) Delete(subj Subject) error {
	k, err := encodeBanKey(subj)
	if err != nil {
		return err
	}
	return s.update(func(bk *bolt.Bucket) error { return bk.Delete(k) })
}

// Apply implements BatchBanStore: one transaction, one fsync.
func (s *BoltStore) Apply(puts []Ban, dels []Subject) error {
	recs, keys, err := encodeBatch(puts, dels)
	if err != nil {
		return err
	}
	return s.wrap(s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(banBucket)
		for _, r := range recs {
			if err := bk.Put(r[0], r[1]); err != nil {
				return err
			}
		}
		for _, k := range keys {
			if err := bk.Delete(k); err != nil {
				return err
			}
		}
		return nil
	}))
}

// Path returns the file the store was opened from.
func (s *BoltStore) Path() string { return s.path }

// Load implements BanStore; bans come sorted by key. Records that do not
// decode are reported with the file's name.
func (s *BoltStore) Load() ([]Ban, error) {
	var bans []Ban
	var errs []error
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(banBucket).ForEach(func(k, v []byte) error {
			b, err := decodeBan(k, v)
			if err != nil {
				errs = append(errs, err)
				return nil
			}
			bans = append(bans, b)
			return nil
		})
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	if len(errs) > 0 {
		return bans, fmt.Errorf("antispam: ban store %s: %d record(s) skipped: %w", s.path, len(errs), errors.Join(errs...))
	}
	return bans, nil
}

// Close implements BanStore.
func (s *BoltStore) Close() error {
	return s.wrap(s.db.Close())
}

// putRaw stores a record as given, bypassing encodeBan: tests use it to
// plant corrupt records.
func (s *BoltStore) putRaw(key, value []byte) error {
	return s.update(func(bk *bolt.Bucket) error { return bk.Put(key, value) })
}

// update runs f in a batched transaction: f may run more than once (bbolt
// reruns a batch's functions one by one if the batch fails), so it must be
// idempotent, as one Put or Delete is.
func (s *BoltStore) update(f func(*bolt.Bucket) error) error {
	return s.wrap(s.db.Batch(func(tx *bolt.Tx) error { return f(tx.Bucket(banBucket)) }))
}

// SalvageBoltStore reads what it can of a possibly damaged ban store,
// read-only and without checking it first, for `bitmesh repair`: every ban
// it can decode, up to the first page bbolt cannot read. Memory faults and
// panics inside bbolt end the reading with an error (returned with the bans
// read so far) instead of crashing; records that do not decode are skipped
// and reported in an error wrapping ErrCorruptBan.
func SalvageBoltStore(path string) (bans []Ban, err error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("antispam: salvage %s: %w", path, err)
	}
	if h, _ := storecheck.Inspect(path); h.Exists && h.PageSize == 0 {
		return nil, fmt.Errorf("antispam: salvage %s: no valid meta page, nothing to read", path)
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = errors.Join(err, fmt.Errorf("antispam: salvage %s: unreadable: %v", path, r))
		}
	}()
	opts := *bolt.DefaultOptions
	opts.Timeout = boltLockTimeout
	opts.ReadOnly = true // no freelist load, no write: fewer places to trip
	db, err := bolt.Open(path, 0o400, &opts)
	if err != nil {
		return nil, fmt.Errorf("antispam: salvage %s: %w", path, err)
	}
	defer db.Close()
	var errs []error
	err = db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(banBucket)
		if bk == nil {
			return nil
		}
		return bk.ForEach(func(k, v []byte) error {
			b, err := decodeBan(k, v)
			if err != nil {
				errs = append(errs, err)
				return nil
			}
			bans = append(bans, b)
			return nil
		})
	})
	return bans, errors.Join(append(errs, err)...)
}

func (s *BoltStore) wrap(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return ErrStoreClosed
	}
	return fmt.Errorf("antispam: ban store: %w", err)
}

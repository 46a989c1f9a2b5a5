package lightning

import (
	"encoding/binary"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/bitmesh/bitmesh/internal/storecheck"
)

// meter counts the units used of each token, durably when it has a
// store: a unit is written as used (and fsynced) before it is served, so
// a crash may cost the buyer a unit but never gives one away twice.
type meter struct {
	mu   sync.Mutex
	used map[[32]byte]uint64 // without a store
	db   *bolt.DB
}

var usedBucket = []byte("used")

// openMeter keeps the counts in memory if path is empty, else in a bbolt
// file at path.
func openMeter(path string) (*meter, error) {
	if path == "" {
		return &meter{used: map[[32]byte]uint64{}}, nil
	}
	db, err := storecheck.Open(path, 0o600, bolt.DefaultOptions)
	if err != nil {
		return nil, fmt.Errorf("lightning: opening %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(usedBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("lightning: %s: %w", path, err)
	}
	return &meter{db: db}, nil
}

func (m *meter) close() error {
	if m.db != nil {
		return m.db.Close()
	}
	return nil
}

// consume uses n of the limit units of token id. It returns what is left
// and whether these were the token's first units (its sale).
func (m *meter) consume(id [32]byte, limit, n uint64) (left uint64, first bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	check := func(used uint64) error {
		if n == 0 || used > limit || n > limit-used {
			return fmt.Errorf("%w: %d of %d used, %d asked", ErrExhausted, used, limit, n)
		}
		left, first = limit-used-n, used == 0
		return nil
	}
	if m.db == nil {
		used := m.used[id]
		if err := check(used); err != nil {
			return 0, false, err
		}
		m.used[id] = used + n
		return left, first, nil
	}
	err = m.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(usedBucket)
		var used uint64
		if v := b.Get(id[:]); len(v) == 8 {
			used = binary.BigEndian.Uint64(v)
		} else if v != nil {
			return fmt.Errorf("lightning: damaged count of %d bytes for token %x", len(v), id)
		}
		if err := check(used); err != nil {
			return err
		}
		return b.Put(id[:], binary.BigEndian.AppendUint64(nil, used+n))
	})
	return left, first, err
}

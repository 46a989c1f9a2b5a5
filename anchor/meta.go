package anchor

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// MetaStore is the optional companion of a Store that keeps small records
// beside each log: what a log's owner must not lose with a restart but is
// not a leaf, such as the checkpoints it signed. Records live and go with
// their log's name. Implementations are safe for concurrent use.
type MetaStore interface {
	// PutMeta stores value under key for the named log, replacing any
	// earlier value, and returns only once it is durable.
	PutMeta(name, key string, value []byte) error
	// Meta returns a copy of the value under key; an absent key fails with
	// an error wrapping ErrNotFound.
	Meta(name, key string) ([]byte, error)
	// MetaKeys returns the named log's keys that start with prefix, sorted
	// bytewise.
	MetaKeys(name, prefix string) ([]string, error)
	// DeleteMeta removes the keys (absent ones are no error) in one durable
	// write.
	DeleteMeta(name string, keys ...string) error
}

// Bounds of a meta record, checked before it is stored.
const (
	// MaxMetaKeyLen bounds a meta key in bytes (a bbolt key).
	MaxMetaKeyLen = 255
	// MaxMetaValueSize bounds one meta value: one bbolt write holds it in
	// memory, and a checkpoint with its cosignatures and anchor proofs is
	// far smaller.
	MaxMetaValueSize = 1 << 20
)

func checkMeta(name, key string, value []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	if len(key) == 0 || len(key) > MaxMetaKeyLen {
		return fmt.Errorf("%w: key of %d bytes, want 1..%d", ErrInvalidMeta, len(key), MaxMetaKeyLen)
	}
	if len(value) > MaxMetaValueSize {
		return fmt.Errorf("%w: value of %d bytes exceeds %d", ErrInvalidMeta, len(value), MaxMetaValueSize)
	}
	return nil
}

var (
	_ MetaStore = (*MemoryStore)(nil)
	_ MetaStore = (*BoltStore)(nil)
)

// PutMeta implements MetaStore.
func (s *MemoryStore) PutMeta(name, key string, value []byte) error {
	if err := checkMeta(name, key, value); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrStoreClosed
	}
	if s.meta == nil {
		s.meta = make(map[string]map[string][]byte)
	}
	if s.meta[name] == nil {
		s.meta[name] = make(map[string][]byte)
	}
	s.meta[name][key] = bytes.Clone(value)
	return nil
}

// Meta implements MetaStore.
func (s *MemoryStore) Meta(name, key string) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrStoreClosed
	}
	v, ok := s.meta[name][key]
	if !ok {
		return nil, fmt.Errorf("%w: meta %q of log %q", ErrNotFound, key, name)
	}
	return bytes.Clone(v), nil
}

// MetaKeys implements MetaStore.
func (s *MemoryStore) MetaKeys(name, prefix string) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrStoreClosed
	}
	var keys []string
	for k := range s.meta[name] {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// DeleteMeta implements MetaStore.
func (s *MemoryStore) DeleteMeta(name string, keys ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrStoreClosed
	}
	for _, k := range keys {
		delete(s.meta[name], k)
	}
	return nil
}

// boltMetaBucket is the bucket inside a log's bucket that holds its meta
// records, key to value.
var boltMetaBucket = []byte("meta")

// PutMeta implements MetaStore: one fsynced bbolt transaction.
func (s *BoltStore) PutMeta(name, key string, value []byte) error {
	if err := checkMeta(name, key, value); err != nil {
		return err
	}
	err := s.update(name, func(b *bolt.Bucket) error {
		mb, err := b.CreateBucketIfNotExists(boltMetaBucket)
		if err != nil {
			return err
		}
		return mb.Put([]byte(key), value)
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrStoreClosed
	}
	if err != nil {
		return fmt.Errorf("anchor: %s: storing meta %q of log %q: %w", s.path, key, name, err)
	}
	return nil
}

// viewMeta runs fn on the named log's meta bucket, nil if it does not
// exist.
func (s *BoltStore) viewMeta(name string, fn func(mb *bolt.Bucket) error) error {
	return s.view(name, func(b *bolt.Bucket) error {
		var mb *bolt.Bucket
		if b != nil {
			mb = b.Bucket(boltMetaBucket)
		}
		return fn(mb)
	})
}

// Meta implements MetaStore.
func (s *BoltStore) Meta(name, key string) ([]byte, error) {
	var out []byte
	err := s.viewMeta(name, func(mb *bolt.Bucket) error {
		var v []byte
		if mb != nil {
			v = mb.Get([]byte(key))
		}
		if v == nil {
			return fmt.Errorf("%w: meta %q of log %q", ErrNotFound, key, name)
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

// MetaKeys implements MetaStore.
func (s *BoltStore) MetaKeys(name, prefix string) ([]string, error) {
	var keys []string
	err := s.viewMeta(name, func(mb *bolt.Bucket) error {
		if mb == nil {
			return nil
		}
		c := mb.Cursor()
		for k, _ := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, _ = c.Next() {
			keys = append(keys, string(k))
		}
		return nil
	})
	return keys, err
}

// DeleteMeta implements MetaStore: one fsynced bbolt transaction.
func (s *BoltStore) DeleteMeta(name string, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		var mb *bolt.Bucket
		if root := tx.Bucket(boltRootBucket); root != nil {
			if b := root.Bucket([]byte(name)); b != nil {
				mb = b.Bucket(boltMetaBucket)
			}
		}
		if mb == nil {
			return nil
		}
		for _, k := range keys {
			if err := mb.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrStoreClosed
	}
	if err != nil {
		return fmt.Errorf("anchor: %s: deleting meta of log %q: %w", s.path, name, err)
	}
	return nil
}

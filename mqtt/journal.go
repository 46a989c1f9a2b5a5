package mqtt

import (
	"encoding/binary"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// journal keeps the envelopes the gateway sealed, durably, before it
// publishes them: a QoS 1 message is acknowledged only once its envelope
// is here and published, so after a crash the gateway republishes the very
// envelopes it may not have published (the mesh drops a second copy by its
// ID) and recognises the devices' retries of messages it already holds.
//
// Records are (seq → topic, envelope); the "published" key holds the
// highest seq known published. Only the newest journalRetain records are
// kept.
type journal struct {
	db *bolt.DB // nil: memory only (no data directory)

	mu        sync.Mutex // guards the fields below
	seq       uint64     // last record written
	published uint64     // highest seq published
	mem       []record   // memory-only journal, newest last
}

type record struct {
	seq   uint64
	topic string
	raw   []byte
}

const journalRetain = 1024

var (
	bucketBatches = []byte("batches")
	bucketMeta    = []byte("meta")
	keyPublished  = []byte("published")
)

// openJournal opens path (bbolt), or a memory journal when path is "".
func openJournal(path string) (*journal, error) {
	j := &journal{}
	if path == "" {
		return j, nil
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrJournal, err)
	}
	j.db = db
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketBatches)
		if err != nil {
			return err
		}
		m, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if k, _ := b.Cursor().Last(); k != nil {
			j.seq = binary.BigEndian.Uint64(k)
		}
		if v := m.Get(keyPublished); len(v) == 8 {
			j.published = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: %v", ErrJournal, err)
	}
	return j, nil
}

// append records raw on topic durably and returns its seq. It also
// records that every seq before the ones still in flight was published.
func (j *journal) append(topic string, raw []byte) (uint64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	seq := j.seq + 1
	if j.db == nil {
		j.mem = append(j.mem, record{seq: seq, topic: topic, raw: raw})
		if len(j.mem) > journalRetain {
			j.mem = j.mem[len(j.mem)-journalRetain:]
		}
		j.seq = seq
		return seq, nil
	}
	v := make([]byte, 0, 1+len(topic)+len(raw))
	v = append(v, byte(len(topic)))
	v = append(v, topic...)
	v = append(v, raw...)
	published := j.published
	err := j.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBatches)
		if err := b.Put(be64(seq), v); err != nil {
			return err
		}
		if err := tx.Bucket(bucketMeta).Put(keyPublished, be64(published)); err != nil {
			return err
		}
		if seq > journalRetain {
			c := b.Cursor()
			for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= seq-journalRetain; k, _ = c.Next() {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrJournal, err)
	}
	j.seq = seq
	return seq, nil
}

// markPublished notes that seq was published; the next append stores it
// (one write per batch, not two: a crash before then republishes seq,
// which the mesh drops by its ID).
func (j *journal) markPublished(seq uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if seq > j.published {
		j.published = seq
	}
}

// records returns the retained records, oldest first, and the highest
// seq recorded as published.
func (j *journal) records() ([]record, uint64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.db == nil {
		return append([]record(nil), j.mem...), j.published, nil
	}
	var out []record
	err := j.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBatches).ForEach(func(k, v []byte) error {
			if len(k) != 8 || len(v) < 1 || len(v) < 1+int(v[0]) {
				return fmt.Errorf("record %x: malformed", k)
			}
			tl := int(v[0])
			out = append(out, record{seq: binary.BigEndian.Uint64(k), topic: string(v[1 : 1+tl]), raw: append([]byte(nil), v[1+tl:]...)})
			return nil
		})
	})
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrJournal, err)
	}
	return out, j.published, nil
}

func (j *journal) close() error {
	if j.db == nil {
		return nil
	}
	return j.db.Close()
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

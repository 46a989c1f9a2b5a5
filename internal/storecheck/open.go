package storecheck

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// maxReported bounds how many of tx.Check's findings go into the error.
const maxReported = 3

// Open is bolt.Open guarded as the package comment describes: it refuses a
// damaged file with a *DamageError (wrapping ErrDamaged) before or after
// bbolt opens it, and creates a missing one. Errors that are not damage (a
// lock timeout, a permission error) are bbolt's, unchanged. opts may be nil
// for bbolt's defaults.
func Open(path string, mode os.FileMode, opts *bolt.Options) (*bolt.DB, error) {
	h, err := Inspect(path)
	if err != nil {
		return nil, err
	}
	db, err := openGuarded(path, mode, opts)
	if err != nil {
		return nil, err
	}
	if h.Exists {
		if err := Verify(db, path); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	return db, nil
}

// openGuarded runs bolt.Open, turning a panic or a memory fault inside it
// into a *DamageError. bbolt does not close its file when it panics, so the
// file is captured through Options.OpenFile and closed here, releasing its
// lock.
func openGuarded(path string, mode os.FileMode, opts *bolt.Options) (db *bolt.DB, err error) {
	o := *bolt.DefaultOptions
	if opts != nil {
		o = *opts
	}
	openFile := o.OpenFile
	if openFile == nil {
		openFile = os.OpenFile
	}
	var file *os.File
	o.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := openFile(name, flag, perm)
		file = f
		return f, err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				_ = file.Close()
			}
			db, err = nil, Damaged(path, "bbolt failed while opening it: %v", r)
		}
	}()
	db, err = bolt.Open(path, mode, &o)
	if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrVersionMismatch) {
		return nil, Damaged(path, "bbolt refused it: %v", err)
	}
	return db, err
}

// Verify checks an open store: it reads every bucket, key and value (so
// that every page the tree references is touched once, with memory faults
// turned into errors), then runs bbolt's tx.Check, which also checks that
// every page is either reachable or free exactly once. Its cost is one read
// of the whole file. Any finding is a *DamageError for path.
func Verify(db *bolt.DB, path string) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = Damaged(path, "bbolt failed while reading it: %v", r)
		}
	}()
	return db.View(func(tx *bolt.Tx) error {
		var n int
		err := tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return walk(b, name, &n)
		})
		if err != nil {
			return Damaged(path, "%v", err)
		}
		// tx.Check runs in its own goroutine, where no recover() reaches:
		// the walk above has already read every page it will read, so a
		// page it would fault on has been reported instead.
		var found []error
		total := 0
		for e := range tx.Check() {
			if total++; len(found) < maxReported {
				found = append(found, e)
			}
		}
		if total > 0 {
			return Damaged(path, "consistency check found %d problem(s), first: %v", total, errors.Join(found...))
		}
		return nil
	})
}

// walk reads every key and value of b and its nested buckets. Values are
// read one byte per 1 KiB (less than any page size), enough to fault on any
// page of them that lies outside the file.
func walk(b *bolt.Bucket, name []byte, n *int) error {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			nb := b.Bucket(k)
			if nb == nil {
				return fmt.Errorf("bucket %q: key %x has no value and is not a bucket", name, k)
			}
			if err := walk(nb, k, n); err != nil {
				return err
			}
			continue
		}
		for i := 0; i < len(v); i += minPageSize {
			*n += int(v[i])
		}
		if len(v) > 0 {
			*n += int(v[len(v)-1])
		}
	}
	return nil
}

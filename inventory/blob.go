package inventory

import (
	"bytes"
	"io"
	"os"
	"sync"
)

// blob is where an object's bytes or its chunk log live: a file in the
// data directory, or memory for a node without one (simulations).
type blob interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
	Truncate(size int64) error
	Close() error
}

var (
	_ blob = (*os.File)(nil)
	_ blob = (*memBlob)(nil)
)

// memPage is the unit in which a memBlob holds its bytes.
const memPage = 64 << 10

// memBlob is a blob in memory, kept in pages allocated on their first
// write, so an object being fetched holds only the chunks that arrived;
// bytes never written read as zeros, as in a sparse file. Safe for
// concurrent access.
type memBlob struct {
	mu    sync.Mutex       // guards the fields below
	size  int64            // as a file's: the end of the furthest write, or as truncated
	pages map[int64][]byte // page number → its memPage bytes
}

func (m *memBlob) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if off >= m.size {
		return 0, io.EOF
	}
	n := len(p)
	if rest := m.size - off; int64(n) > rest {
		n = int(rest)
	}
	for done := 0; done < n; {
		pg, in := (off+int64(done))/memPage, int((off+int64(done))%memPage)
		k := min(n-done, memPage-in)
		if page, ok := m.pages[pg]; ok {
			copy(p[done:done+k], page[in:])
		} else {
			clear(p[done : done+k])
		}
		done += k
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memBlob) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pages == nil {
		m.pages = make(map[int64][]byte)
	}
	for done := 0; done < len(p); {
		pg, in := (off+int64(done))/memPage, int((off+int64(done))%memPage)
		k := min(len(p)-done, memPage-in)
		page, ok := m.pages[pg]
		switch {
		case ok:
			copy(page[in:], p[done:done+k])
		case k == memPage:
			m.pages[pg] = bytes.Clone(p[done : done+k]) // no zeroing first
		default:
			page = make([]byte, memPage)
			copy(page[in:], p[done:done+k])
			m.pages[pg] = page
		}
		done += k
	}
	m.size = max(m.size, off+int64(len(p)))
	return len(p), nil
}

// Truncate sets the size; bytes past a shrunk end are forgotten, so they
// read as zeros if it grows again.
func (m *memBlob) Truncate(size int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if size < m.size {
		for pg, page := range m.pages {
			switch start := pg * memPage; {
			case start >= size:
				delete(m.pages, pg)
			case start+memPage > size:
				clear(page[size-start:])
			}
		}
	}
	m.size = size
	return nil
}

func (m *memBlob) Sync() error  { return nil }
func (m *memBlob) Close() error { return nil }

package inventory

import (
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

// memBlob is a blob in memory. Safe for concurrent access.
type memBlob struct {
	mu sync.Mutex // guards b
	b  []byte
}

func (m *memBlob) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memBlob) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	return copy(m.b[off:], p), nil
}

func (m *memBlob) Truncate(size int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if size <= int64(len(m.b)) {
		m.b = m.b[:size]
	} else {
		m.b = append(m.b, make([]byte, size-int64(len(m.b)))...)
	}
	return nil
}

func (m *memBlob) Sync() error  { return nil }
func (m *memBlob) Close() error { return nil }

package inventory

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestMemBlobActsAsFile runs the same random writes, reads and truncates
// on a memBlob and on a real file, and checks every read returns the same
// bytes and error.
func TestMemBlobActsAsFile(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "blob"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := &memBlob{}
	r := rand.New(rand.NewPCG(1, 2))
	span := int64(5 * memPage)
	for step := range 2000 {
		off := r.Int64N(span)
		buf := make([]byte, r.IntN(2*memPage+1))
		switch r.IntN(4) {
		case 0, 1:
			for i := range buf {
				buf[i] = byte(r.Uint32())
			}
			if _, err := f.WriteAt(buf, off); err != nil {
				t.Fatal(err)
			}
			if n, err := m.WriteAt(buf, off); n != len(buf) || err != nil {
				t.Fatalf("step %d: WriteAt = %d, %v", step, n, err)
			}
		case 2:
			want := make([]byte, len(buf))
			wn, werr := f.ReadAt(want, off)
			gn, gerr := m.ReadAt(buf, off)
			if gn != wn || !bytes.Equal(buf[:gn], want[:wn]) || errors.Is(gerr, io.EOF) != errors.Is(werr, io.EOF) {
				t.Fatalf("step %d: ReadAt(%d bytes at %d) = %d, %v; the file gives %d, %v", step, len(buf), off, gn, gerr, wn, werr)
			}
		case 3:
			if err := f.Truncate(off); err != nil {
				t.Fatal(err)
			}
			if err := m.Truncate(off); err != nil {
				t.Fatal(err)
			}
		}
	}
}

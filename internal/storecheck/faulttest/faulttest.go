// Package faulttest damages copies of bbolt store files the ways disks and
// operators do, for the storage fault tests of the packages that keep them.
//
// Each Fault is applied to a fresh copy of a store written by the test; the
// test then opens the copy in its own process (so a SIGBUS would kill the
// test: that is the point) and checks that the open either fails with an
// error naming the file or keeps everything that was written.
package faulttest

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bitmesh/bitmesh/internal/storecheck"
)

// Fault is one way of damaging a store file.
type Fault struct {
	Name string
	// Apply damages the file at path in place.
	Apply func(t testing.TB, path string)
	// MustRefuse is set when no store may open the damaged file: the
	// damage takes away pages or meta data that the written data needs.
	MustRefuse bool
}

// Faults returns the damage rows every store fault test runs: truncations
// (to nothing, one page, two pages, mid-file) and zeroed meta pages, which
// every store must refuse, and random bytes at random offsets drawn from
// seed (one row per seed), which it must refuse or survive.
func Faults(seeds ...uint64) []Fault {
	fs := []Fault{
		{"truncate to 0", func(t testing.TB, p string) { truncate(t, p, 0) }, true},
		{"truncate to one page", func(t testing.TB, p string) { truncate(t, p, int64(PageSize(t, p))) }, true},
		{"truncate to two pages", func(t testing.TB, p string) { truncate(t, p, 2*int64(PageSize(t, p))) }, true},
		{"truncate mid-file on a page boundary", func(t testing.TB, p string) {
			ps := int64(PageSize(t, p))
			truncate(t, p, size(t, p)/2/ps*ps)
		}, true},
		{"truncate mid-page", func(t testing.TB, p string) { truncate(t, p, size(t, p)/2+123) }, true},
		{"zero first meta page", func(t testing.TB, p string) { zero(t, p, 0, PageSize(t, p)) }, true},
		{"zero second meta page", func(t testing.TB, p string) {
			ps := PageSize(t, p)
			zero(t, p, int64(ps), ps)
		}, true},
		{"zero both meta pages", func(t testing.TB, p string) { zero(t, p, 0, 2*PageSize(t, p)) }, true},
	}
	for _, seed := range seeds {
		fs = append(fs, Fault{Name: "random bytes seed " + strconv.FormatUint(seed, 10), Apply: func(t testing.TB, p string) {
			r := rand.New(rand.NewPCG(seed, seed))
			n := 1 + r.IntN(64)
			off := r.Int64N(size(t, p) - int64(n))
			junk := make([]byte, n)
			for i := range junk {
				junk[i] = byte(r.Uint32())
			}
			WriteAt(t, p, off, junk)
		}})
	}
	return fs
}

// CheckRefusal fails the test unless err, from opening the store file at
// path, wraps sentinel and names both the file and the repair command for
// its data directory: what an operator needs to act on it.
func CheckRefusal(t testing.TB, err error, path string, sentinel error) {
	t.Helper()
	msg := err.Error()
	if !errors.Is(err, sentinel) || !strings.Contains(msg, path) ||
		!strings.Contains(msg, "bitmesh repair --data "+filepath.Dir(path)) {
		t.Fatalf("error %q does not wrap %v, name the file and the repair command", msg, sentinel)
	}
}

// FlipByteIn flips one byte in the middle of every occurrence of marker in
// the file (a value the test wrote, so the damage lands inside stored
// data): bbolt copies a page on write and leaves the old copy in a free
// page, so only one occurrence is live and the test cannot tell which. It
// fails the test if marker is not in the file.
func FlipByteIn(t testing.TB, path string, marker []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for off := 0; ; {
		i := bytes.Index(b[off:], marker)
		if i < 0 {
			break
		}
		at := off + i + len(marker)/2
		WriteAt(t, path, int64(at), []byte{b[at] ^ 0x20})
		found, off = true, off+i+len(marker)
	}
	if !found {
		t.Fatalf("marker %q not in %s", marker, path)
	}
}

// PageSize returns the file's bbolt page size, read from its meta page.
func PageSize(t testing.TB, path string) int {
	t.Helper()
	h, err := storecheck.Inspect(path)
	if err != nil {
		t.Fatalf("pristine store: %v", err)
	}
	return h.PageSize
}

// Copy copies src to dst.
func Copy(t testing.TB, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// WriteAt overwrites the file at off with b.
func WriteAt(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func zero(t testing.TB, path string, off int64, n int) { WriteAt(t, path, off, make([]byte, n)) }

func truncate(t testing.TB, path string, n int64) {
	t.Helper()
	if err := os.Truncate(path, n); err != nil {
		t.Fatal(err)
	}
}

func size(t testing.TB, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

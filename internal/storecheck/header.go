package storecheck

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
)

// bbolt's on-disk layout (go.etcd.io/bbolt/internal/common, format version
// 2), read here with plain file reads so that a damaged file can be judged
// without mapping it.
const (
	pageHeaderSize = 16 // id uint64, flags uint16, count uint16, overflow uint32
	metaSize       = 64 // the meta fields, checksum last
	metaSumLen     = 56 // FNV-64a covers the meta bytes before the checksum

	boltMagic   uint32 = 0xED0CDAED
	boltVersion uint32 = 2

	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	metaPageFlag     = 0x04
	freelistPageFlag = 0x10

	noFreelist = ^uint64(0) // the freelist is not stored (NoFreelistSync)

	// minPages: bbolt creates a file with two meta pages, a freelist page
	// and an empty root leaf, and never shrinks it.
	minPages = 4
	// bbolt probes the second meta page at 1 KiB << 0..14 when the first
	// is unreadable; page sizes are powers of two in that range.
	minPageSize = 1 << 10
	maxPageSize = 1 << 24
)

// Meta is one decoded meta page.
type Meta struct {
	PageSize uint32
	Root     uint64 // page of the root bucket
	Freelist uint64 // page of the freelist, or all ones if not stored
	HighMark uint64 // pgid: pages [0, HighMark) are in use or free
	TxID     uint64
	Err      string // why the page is invalid; empty if valid
}

// Valid reports whether the meta page passed every check.
func (m Meta) Valid() bool { return m.Err == "" }

// Header is what Inspect read from a store file.
type Header struct {
	Exists   bool  // false: the file is missing and will be created
	Size     int64 // file size in bytes
	PageSize int
	Metas    [2]Meta
	Current  int // index of the meta bbolt will use: the valid one with the higher txid
}

// Inspect judges the store file at path without opening it with bbolt. A
// missing file is not an error (Header.Exists is false); a file that exists
// but that bbolt cannot open without crashing, or could open only by
// dropping committed data (one meta page invalid, so it would fall back to
// the older commit), gives a *DamageError. Other IO errors are returned as
// they are.
func Inspect(path string) (Header, error) {
	var h Header
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return h, nil
	}
	if err != nil {
		return h, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return h, err
	}
	h.Exists, h.Size = true, st.Size()
	if !st.Mode().IsRegular() {
		return h, Damaged(path, "not a regular file")
	}
	if h.Size == 0 {
		return h, Damaged(path, "file is empty (0 bytes): a store is never empty once created, so its data was lost")
	}

	// The page size is in the meta pages; the first one is at offset 0, the
	// second one page size later.
	h.Metas[0] = readMeta(f, 0, 0)
	switch {
	case h.Metas[0].Valid():
		h.PageSize = int(h.Metas[0].PageSize)
		h.Metas[1] = readMeta(f, int64(h.PageSize), 1)
	default:
		h.Metas[1] = Meta{Err: "not found"}
		for ps := minPageSize; ps <= maxPageSize && int64(ps) < h.Size; ps <<= 1 {
			if m := readMeta(f, int64(ps), 1); m.Valid() && int(m.PageSize) == ps {
				h.Metas[1], h.PageSize = m, ps
				break
			}
		}
	}
	if h.PageSize == 0 {
		return h, Damaged(path, "both meta pages are invalid (page 0: %s; page 1: %s): this is not a readable bbolt file",
			h.Metas[0].Err, h.Metas[1].Err)
	}
	ps := int64(h.PageSize)
	if h.Size < minPages*ps {
		return h, Damaged(path, "file is %d bytes, shorter than bbolt's %d initial pages of %d bytes: it was cut short", h.Size, minPages, ps)
	}
	if h.Size%ps != 0 {
		return h, Damaged(path, "file is %d bytes, not a whole number of %d-byte pages: it was cut short or extended", h.Size, ps)
	}
	for i, m := range h.Metas {
		if !m.Valid() {
			other := h.Metas[1-i]
			return h, Damaged(path, "meta page %d is invalid (%s); bbolt would fall back to meta page %d (txid %d) and silently drop any commit after it",
				i, m.Err, 1-i, other.TxID)
		}
	}
	if h.Metas[1].TxID > h.Metas[0].TxID {
		h.Current = 1
	}
	m := h.Metas[h.Current]
	if m.Root >= m.HighMark || m.Root < 2 {
		return h, Damaged(path, "meta page %d: root page %d outside [2, %d)", h.Current, m.Root, m.HighMark)
	}
	if need := int64(m.HighMark) * ps; m.HighMark > uint64(h.Size/ps) {
		return h, Damaged(path, "file is %d bytes but its meta page %d (txid %d) uses %d pages (%d bytes): it was cut short",
			h.Size, h.Current, m.TxID, m.HighMark, need)
	}
	if err := checkTreePage(f, ps, m.Root); err != nil {
		return h, Damaged(path, "root page %d: %v", m.Root, err)
	}
	if m.Freelist != noFreelist {
		if err := checkFreelist(f, ps, m); err != nil {
			return h, Damaged(path, "freelist page %d: %v", m.Freelist, err)
		}
	}
	return h, nil
}

// readMeta decodes the meta page at off, expected to be page id.
func readMeta(f *os.File, off int64, id uint64) Meta {
	var buf [pageHeaderSize + metaSize]byte
	if _, err := f.ReadAt(buf[:], off); err != nil {
		if errors.Is(err, io.EOF) {
			return Meta{Err: "past the end of the file"}
		}
		return Meta{Err: err.Error()}
	}
	le := binary.LittleEndian
	b := buf[pageHeaderSize:]
	m := Meta{
		PageSize: le.Uint32(b[8:]),
		Root:     le.Uint64(b[16:]),
		Freelist: le.Uint64(b[32:]),
		HighMark: le.Uint64(b[40:]),
		TxID:     le.Uint64(b[48:]),
	}
	sum := fnv.New64a()
	sum.Write(b[:metaSumLen])
	switch {
	case le.Uint32(b[0:]) != boltMagic:
		m.Err = fmt.Sprintf("magic %#x, want %#x", le.Uint32(b[0:]), boltMagic)
	case le.Uint32(b[4:]) != boltVersion:
		m.Err = fmt.Sprintf("version %d, want %d", le.Uint32(b[4:]), boltVersion)
	case le.Uint64(b[56:]) != sum.Sum64():
		m.Err = "checksum mismatch"
	case le.Uint16(buf[8:]) != metaPageFlag:
		m.Err = fmt.Sprintf("page flags %#x, want meta", le.Uint16(buf[8:]))
	case le.Uint64(buf[0:]) != id:
		m.Err = fmt.Sprintf("page id %d, want %d", le.Uint64(buf[0:]), id)
	case m.PageSize < minPageSize || m.PageSize > maxPageSize || m.PageSize&(m.PageSize-1) != 0:
		m.Err = fmt.Sprintf("page size %d", m.PageSize)
	case m.HighMark < minPages:
		m.Err = fmt.Sprintf("high-water mark %d below %d pages", m.HighMark, minPages)
	}
	return m
}

// pageHeader reads the header of page id.
func pageHeader(f *os.File, ps int64, id uint64) (pid uint64, flags, count uint16, overflow uint32, err error) {
	var buf [pageHeaderSize]byte
	if _, err := f.ReadAt(buf[:], int64(id)*ps); err != nil {
		return 0, 0, 0, 0, err
	}
	le := binary.LittleEndian
	return le.Uint64(buf[0:]), le.Uint16(buf[8:]), le.Uint16(buf[10:]), le.Uint32(buf[12:]), nil
}

// checkTreePage checks that page id is a branch or leaf page that says it is
// page id: bbolt panics on the first read of the root otherwise.
func checkTreePage(f *os.File, ps int64, id uint64) error {
	pid, flags, _, _, err := pageHeader(f, ps, id)
	if err != nil {
		return err
	}
	if flags != branchPageFlag && flags != leafPageFlag {
		return fmt.Errorf("page flags %#x, want branch or leaf", flags)
	}
	if pid != id {
		return fmt.Errorf("page says it is page %d", pid)
	}
	return nil
}

// checkFreelist checks the freelist page that bbolt reads while opening
// (where a bad one makes it panic): its type, its extent within the high
// water mark, and that every free page id is a data page below it.
func checkFreelist(f *os.File, ps int64, m Meta) error {
	if m.Freelist < 2 || m.Freelist >= m.HighMark {
		return fmt.Errorf("outside [2, %d)", m.HighMark)
	}
	pid, flags, count, overflow, err := pageHeader(f, ps, m.Freelist)
	if err != nil {
		return err
	}
	if flags != freelistPageFlag {
		return fmt.Errorf("page flags %#x, want freelist", flags)
	}
	if pid != m.Freelist {
		return fmt.Errorf("page says it is page %d", pid)
	}
	if m.Freelist+uint64(overflow) >= m.HighMark {
		return fmt.Errorf("%d overflow pages run past the high-water mark %d", overflow, m.HighMark)
	}
	span := int64(overflow+1) * ps
	n, first := int64(count), int64(0)
	if count == 0xFFFF { // the real count is the first element
		var c [8]byte
		if _, err := f.ReadAt(c[:], int64(m.Freelist)*ps+pageHeaderSize); err != nil {
			return err
		}
		n, first = int64(binary.LittleEndian.Uint64(c[:])), 1
		if n < 0 {
			return fmt.Errorf("count %d", n)
		}
	}
	if n > (span-pageHeaderSize)/8-first {
		return fmt.Errorf("%d free page ids do not fit in %d pages", n, overflow+1)
	}
	ids := make([]byte, n*8)
	if _, err := f.ReadAt(ids, int64(m.Freelist)*ps+pageHeaderSize+first*8); err != nil {
		return err
	}
	for i := int64(0); i < n; i++ {
		if id := binary.LittleEndian.Uint64(ids[i*8:]); id < 2 || id >= m.HighMark {
			return fmt.Errorf("free page id %d outside [2, %d)", id, m.HighMark)
		}
	}
	return nil
}

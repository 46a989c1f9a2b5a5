package anchor

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// metaStores opens each MetaStore implementation for a test, with a reopen
// function that returns the same records as a fresh handle (the BoltStore
// from its file, the MemoryStore itself).
func metaStores(t *testing.T) map[string]func() (MetaStore, func() MetaStore) {
	return map[string]func() (MetaStore, func() MetaStore){
		"memory": func() (MetaStore, func() MetaStore) {
			s := NewMemoryStore()
			return s, func() MetaStore { return s }
		},
		"bolt": func() (MetaStore, func() MetaStore) {
			path := filepath.Join(t.TempDir(), "anchor.db")
			s, err := OpenBoltStore(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s, func() MetaStore {
				s.Close()
				s, err = OpenBoltStore(path)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
		},
	}
}

func TestMetaStore(t *testing.T) {
	tests := []struct {
		name    string
		log     string
		key     string
		value   []byte
		wantErr error
	}{
		{"record", "topic/a", "checkpoint/01", []byte("signed note"), nil},
		{"empty value", "topic/a", "empty", []byte{}, nil},
		{"largest value", "topic/a", "big", bytes.Repeat([]byte{7}, MaxMetaValueSize), nil},
		{"longest key", "topic/a", strings.Repeat("k", MaxMetaKeyLen), []byte("v"), nil},
		{"value too large", "topic/a", "huge", make([]byte, MaxMetaValueSize+1), ErrInvalidMeta},
		{"empty key", "topic/a", "", []byte("v"), ErrInvalidMeta},
		{"key too long", "topic/a", strings.Repeat("k", MaxMetaKeyLen+1), []byte("v"), ErrInvalidMeta},
		{"empty log name", "", "k", []byte("v"), ErrInvalidName},
	}
	for kind, open := range metaStores(t) {
		for _, tt := range tests {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				s, reopen := open()
				err := s.PutMeta(tt.log, tt.key, tt.value)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("PutMeta: %v, want %v", err, tt.wantErr)
				}
				s = reopen()
				got, err := s.Meta(tt.log, tt.key)
				if tt.wantErr != nil {
					if !errors.Is(err, ErrNotFound) {
						t.Fatalf("Meta after a refused put: %v, want ErrNotFound", err)
					}
					return
				}
				if err != nil || !bytes.Equal(got, tt.value) {
					t.Fatalf("Meta = %d bytes, %v; want the %d stored", len(got), err, len(tt.value))
				}
			})
		}
	}
}

// TestMetaKeysAndDelete checks listing by prefix, deletion, and that
// records of one log are apart from another's and from its leaves.
func TestMetaKeysAndDelete(t *testing.T) {
	for kind, open := range metaStores(t) {
		t.Run(kind, func(t *testing.T) {
			s, reopen := open()
			for _, k := range []string{"cp/03", "cp/01", "cp/02", "other"} {
				if err := s.PutMeta("topic/a", k, []byte(k)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.PutMeta("topic/b", "cp/09", []byte("b")); err != nil {
				t.Fatal(err)
			}
			l, err := OpenLog(s.(Store), "topic/a")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Append([][]byte{leafData(0), leafData(1)}); err != nil {
				t.Fatal(err)
			}
			l.Close()
			if err := s.DeleteMeta("topic/a", "cp/02", "absent"); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteMeta("topic/none", "cp/01"); err != nil {
				t.Fatalf("DeleteMeta of an unknown log: %v", err)
			}
			s = reopen()
			keys, err := s.MetaKeys("topic/a", "cp/")
			if want := []string{"cp/01", "cp/03"}; err != nil || !slices.Equal(keys, want) {
				t.Fatalf("MetaKeys = %q, %v; want %q", keys, err, want)
			}
			if keys, err := s.MetaKeys("topic/none", ""); err != nil || len(keys) != 0 {
				t.Fatalf("MetaKeys of an unknown log = %q, %v", keys, err)
			}
			if _, err := s.Meta("topic/a", "cp/02"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("deleted record: %v, want ErrNotFound", err)
			}
			l, err = OpenLog(s.(Store), "topic/a")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if err := l.Verify(); err != nil || l.Size() != 2 {
				t.Fatalf("log beside the records: size %d, %v", l.Size(), err)
			}
		})
	}
}

func TestMetaStoreClosed(t *testing.T) {
	for kind, open := range metaStores(t) {
		t.Run(kind, func(t *testing.T) {
			s, _ := open()
			s.(Store).Close()
			if err := s.PutMeta("topic/a", "k", nil); !errors.Is(err, ErrStoreClosed) {
				t.Errorf("PutMeta: %v", err)
			}
			if _, err := s.Meta("topic/a", "k"); !errors.Is(err, ErrStoreClosed) {
				t.Errorf("Meta: %v", err)
			}
			if _, err := s.MetaKeys("topic/a", ""); !errors.Is(err, ErrStoreClosed) {
				t.Errorf("MetaKeys: %v", err)
			}
			if err := s.DeleteMeta("topic/a", "k"); !errors.Is(err, ErrStoreClosed) {
				t.Errorf("DeleteMeta: %v", err)
			}
		})
	}
}

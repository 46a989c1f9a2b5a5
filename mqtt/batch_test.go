package mqtt

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"
)

func sampleEntries(n int) []Entry {
	out := make([]Entry, n)
	for i := range out {
		out[i] = Entry{Flags: FlagQoS1, Time: time.UnixMilli(1_795_000_000_000 + int64(i)), PacketID: uint16(i + 1),
			ClientID: fmt.Sprintf("sensor-%d", i), Topic: "sensors/t", Payload: []byte(fmt.Sprintf("reading %d", i))}
	}
	return out
}

func TestBatchRoundTripAndProofs(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 8, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			entries := sampleEntries(n)
			p, err := EncodeBatch(entries)
			if err != nil {
				t.Fatal(err)
			}
			b, err := DecodeBatch(p)
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Entries) != n {
				t.Fatalf("%d entries, want %d", len(b.Entries), n)
			}
			for i, e := range b.Entries {
				w := entries[i]
				if e.Flags != w.Flags || !e.Time.Equal(w.Time) || e.PacketID != w.PacketID || e.ClientID != w.ClientID ||
					e.Topic != w.Topic || !bytes.Equal(e.Payload, w.Payload) {
					t.Fatalf("entry %d: %+v, want %+v", i, e, w)
				}
				path, err := b.EntryProof(i)
				if err != nil {
					t.Fatal(err)
				}
				if err := VerifyEntry(b.Leaf(i), i, n, path, b.Root); err != nil {
					t.Fatalf("entry %d: %v", i, err)
				}
				// Another entry's leaf, or another index, does not verify.
				if n > 1 {
					if VerifyEntry(b.Leaf((i+1)%n), i, n, path, b.Root) == nil {
						t.Fatalf("entry %d's path proves entry %d", i, (i+1)%n)
					}
				}
			}
		})
	}
}

// TestBatchVector pins the encoding of PROTOCOL.md §20's test vector.
func TestBatchVector(t *testing.T) {
	p, err := EncodeBatch([]Entry{
		{Flags: FlagQoS1, Time: time.UnixMilli(1_795_000_000_000), PacketID: 1, ClientID: "s1", Topic: "sensors/t", Payload: []byte("21.5")},
		{Time: time.UnixMilli(1_795_000_000_005), ClientID: "s2", Topic: "sensors/t", Payload: []byte("21.7")},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Computed independently (a few lines of Python over hashlib).
	const want = "424d5142" + "01" + "0002" + // magic, version, count
		"9fc55db71e655e76b54c6dd1c7f50e93d521ed860812a444248751df93407caf" + // root
		"01" + "000001a1ee565e00" + "0001" + "02" + "7331" + "0009" + "73656e736f72732f74" + "00000004" + "32312e35" +
		"00" + "000001a1ee565e05" + "0000" + "02" + "7332" + "0009" + "73656e736f72732f74" + "00000004" + "32312e37"
	if got := hex.EncodeToString(p); got != want {
		t.Fatalf("vector:\n got %s\nwant %s", got, want)
	}
}

func TestDecodeBatchRefuses(t *testing.T) {
	good, err := EncodeBatch(sampleEntries(3))
	if err != nil {
		t.Fatal(err)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, tc := range []struct {
		name string
		p    []byte
	}{
		{"empty", nil},
		{"short header", good[:10]},
		{"bad magic", mut(func(b []byte) []byte { b[0] = 'X'; return b })},
		{"bad version", mut(func(b []byte) []byte { b[4] = 2; return b })},
		{"zero entries", mut(func(b []byte) []byte { b[5], b[6] = 0, 0; return b })},
		{"count beyond the bytes", mut(func(b []byte) []byte { b[5], b[6] = 0xff, 0xff; return b })},
		{"truncated entry", good[:len(good)-1]},
		{"trailing byte", append(append([]byte(nil), good...), 0)},
		{"root mismatch", mut(func(b []byte) []byte { b[7] ^= 1; return b })},
		{"payload altered", mut(func(b []byte) []byte { b[len(b)-1] ^= 1; return b })},
		{"unknown flag", mut(func(b []byte) []byte { b[batchHeader] = 0x80; return b })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeBatch(tc.p); !errors.Is(err, ErrBatchMalformed) {
				t.Fatalf("got %v, want ErrBatchMalformed", err)
			}
		})
	}
}

func TestEncodeBatchRefuses(t *testing.T) {
	long := string(bytes.Repeat([]byte("c"), MaxClientIDLen+1))
	for _, tc := range []struct {
		name    string
		entries []Entry
	}{
		{"none", nil},
		{"client ID too long", []Entry{{ClientID: long, Topic: "t"}}},
		{"empty topic", []Entry{{ClientID: "c"}}},
		{"wildcard topic", []Entry{{ClientID: "c", Topic: "a/#"}}},
		{"payload too large", []Entry{{ClientID: "c", Topic: "t", Payload: make([]byte, maxEntryPayload+1)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := EncodeBatch(tc.entries); !errors.Is(err, ErrBatchMalformed) {
				t.Fatalf("got %v, want ErrBatchMalformed", err)
			}
		})
	}
}

func FuzzDecodeBatch(f *testing.F) {
	good, _ := EncodeBatch(sampleEntries(3))
	f.Add(good)
	one, _ := EncodeBatch(sampleEntries(1))
	f.Add(one)
	f.Add([]byte("BMQB\x01\x00\x01"))
	f.Fuzz(func(t *testing.T, p []byte) {
		b, err := DecodeBatch(p)
		if err != nil {
			if !errors.Is(err, ErrBatchMalformed) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// What decodes re-encodes to the same bytes, and every entry proves.
		again, err := EncodeBatch(b.Entries)
		if err != nil || !bytes.Equal(again, p) {
			t.Fatalf("re-encoding differs: %v", err)
		}
		for i := range b.Entries {
			path, _ := b.EntryProof(i)
			if err := VerifyEntry(b.Leaf(i), i, len(b.Entries), path, b.Root); err != nil {
				t.Fatal(err)
			}
		}
	})
}

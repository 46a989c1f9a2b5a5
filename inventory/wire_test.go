package inventory

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/bitmesh/bitmesh/identity"
)

// testKey is a fixed key, so that manifests and their IDs are vectors.
func testKey(t testing.TB) *identity.PrivateKey {
	t.Helper()
	k, err := identity.PrivateKeyFromBytes(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testManifest(t testing.TB, data []byte, chunk uint32) (*Manifest, ID, [][32]byte) {
	t.Helper()
	m := &Manifest{Network: "bitmesh", Created: time.Unix(1_790_000_000, 0), Type: "firmware", Name: "v1.bin",
		Size: uint64(len(data)), ChunkSize: chunk}
	leaves := make([][32]byte, m.Chunks())
	for i := range leaves {
		leaves[i] = LeafHash(data[i*int(chunk) : min((i+1)*int(chunk), len(data))])
	}
	m.Root = TreeRoot(leaves)
	m.Content = sha256Sum(data)
	id, err := m.Sign(testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return m, id, leaves
}

// TestTreeRootMatchesRFC9162 checks TreeRoot against transparency-dev's
// RFC 6962/9162 hasher, computed by the RFC's recursive definition, for
// every size up to 70 leaves.
func TestTreeRootMatchesRFC9162(t *testing.T) {
	h := rfc6962.DefaultHasher
	var ref func(leaves [][]byte) []byte
	ref = func(leaves [][]byte) []byte {
		if len(leaves) == 1 {
			return h.HashLeaf(leaves[0])
		}
		k := 1
		for k<<1 < len(leaves) {
			k <<= 1
		}
		return h.HashChildren(ref(leaves[:k]), ref(leaves[k:]))
	}
	var chunks [][]byte
	var leaves [][32]byte
	for n := 1; n <= 70; n++ {
		c := []byte{byte(n), byte(n >> 8), 'c'}
		chunks = append(chunks, c)
		leaves = append(leaves, LeafHash(c))
		if got, want := TreeRoot(leaves), ref(chunks); !bytes.Equal(got[:], want) {
			t.Fatalf("%d leaves: root %x, RFC 9162 says %x", n, got, want)
		}
	}
}

// TestManifestVector pins the encoding and ID of one manifest
// (PROTOCOL.md §20.6).
func TestManifestVector(t *testing.T) {
	data := bytes.Repeat([]byte("bitmesh"), 10000) // 70,000 bytes: chunks of 16384, 5 of them
	m, id, _ := testManifest(t, data, MinChunkSize)
	raw, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	unsigned := raw[:len(raw)-64]
	if got := hex.EncodeToString(unsigned); got != manifestVectorUnsigned {
		t.Fatalf("unsigned encoding\n%s, want\n%s", got, manifestVectorUnsigned)
	}
	if got := ID(DomainObject.Hash(unsigned)); got != id {
		t.Fatalf("ID %s is not the tagged hash of the unsigned encoding", id)
	}
	if got := hex.EncodeToString(m.Root[:]); got != manifestVectorRoot {
		t.Fatalf("root %s, want %s", got, manifestVectorRoot)
	}
	if id.String() != manifestVectorID {
		t.Fatalf("ID %s, want %s", id, manifestVectorID)
	}
	back, err := DecodeManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := back.Verify("bitmesh"); err != nil {
		t.Fatal(err)
	}
	if m.Chunks() != 5 || m.ChunkLen(4) != 70000-4*16384 {
		t.Fatalf("chunks %d, last %d", m.Chunks(), m.ChunkLen(4))
	}
}

func TestDecodeManifestRejects(t *testing.T) {
	data := bytes.Repeat([]byte{1}, 40000)
	m, _, _ := testManifest(t, data, MinChunkSize)
	raw, _ := m.Encode()
	flip := func(off int) []byte {
		b := bytes.Clone(raw)
		b[off] ^= 0x80
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"truncated", raw[:len(raw)-1], ErrMalformed},
		{"trailing byte", append(bytes.Clone(raw), 0), ErrMalformed},
		{"version 2", append([]byte{2}, raw[1:]...), ErrMalformed},
		{"oversize", make([]byte, MaxManifestSize+1), ErrMalformed},
		{"type not lower-case", flip(1 + 1 + 7 + 32 + 8 + 1), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeManifest(tt.b); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	verify := []struct {
		name    string
		b       []byte
		network string
		want    error
	}{
		{"signature flipped", flip(len(raw) - 1), "bitmesh", ErrBadSignature},
		{"size changed", flip(len(raw) - 64 - 32*3 - 4 - 1), "bitmesh", ErrBadSignature},
		{"other network", raw, "othernet", ErrWrongNetwork},
	}
	for _, tt := range verify {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeManifest(tt.b)
			if err == nil {
				_, err = m.Verify(tt.network)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRequestRoundTripAndRejects(t *testing.T) {
	id := ID{1, 2, 3}
	good := []Request{
		{Kind: KindInv, IDs: []ID{id, {9}}},
		{Kind: KindGetManifest, IDs: []ID{id}},
		{Kind: KindGetLeaves, IDs: []ID{id}},
		{Kind: KindGetData, IDs: []ID{id}, First: 7, Count: MaxChunksPerRequest},
	}
	for _, r := range good {
		b, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ReadRequest(bytes.NewReader(b))
		if err != nil || got.Kind != r.Kind || got.First != r.First || got.Count != r.Count || len(got.IDs) != len(r.IDs) || got.IDs[0] != r.IDs[0] {
			t.Fatalf("%+v: read back %+v, %v", r, got, err)
		}
	}
	bad := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown kind", []byte{9}},
		{"inv of zero", []byte{KindInv, 0, 0}},
		{"inv over MaxInvPerMsg", []byte{KindInv, 0x03, 0xe9}},
		{"inv short", append([]byte{KindInv, 0, 2}, make([]byte, 40)...)},
		{"getdata of zero", append(append([]byte{KindGetData}, id[:]...), 0, 0, 0, 0, 0, 0)},
		{"getdata over the bound", append(append([]byte{KindGetData}, id[:]...), 0, 0, 0, 0, 0, MaxChunksPerRequest+1)},
		{"getdata past MaxChunks", append(append([]byte{KindGetData}, id[:]...), 0, 0, 0xff, 0xff, 0, 2)},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ReadRequest(bytes.NewReader(tt.b)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestAnswersRejectWrongBytes(t *testing.T) {
	data := bytes.Repeat([]byte{5}, 50000)
	m, id, leaves := testManifest(t, data, MinChunkSize)
	raw, _ := m.Encode()
	other, otherID, _ := testManifest(t, data[:40000], MinChunkSize)
	otherRaw, _ := other.Encode()
	if _, _, err := ReadManifestAnswer(bytes.NewReader(AppendManifestAnswer(nil, raw)), id, "bitmesh"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadManifestAnswer(bytes.NewReader(AppendManifestAnswer(nil, otherRaw)), id, "bitmesh"); !errors.Is(err, ErrBadChunk) {
		t.Fatalf("manifest of %s for %s: %v", otherID, id, err)
	}
	if _, _, err := ReadManifestAnswer(bytes.NewReader([]byte{StatusNotFound}), id, "bitmesh"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("notfound: %v", err)
	}
	if _, err := ReadLeavesAnswer(bytes.NewReader(AppendLeavesAnswer(nil, leaves)), m); err != nil {
		t.Fatal(err)
	}
	bad := append([][32]byte(nil), leaves...)
	bad[1][0] ^= 1
	if _, err := ReadLeavesAnswer(bytes.NewReader(AppendLeavesAnswer(nil, bad)), m); !errors.Is(err, ErrBadChunk) {
		t.Fatalf("wrong leaves: %v", err)
	}
	if _, err := ReadLeavesAnswer(bytes.NewReader(AppendLeavesAnswer(nil, leaves[:2])), m); !errors.Is(err, ErrBadChunk) {
		t.Fatalf("too few leaves: %v", err)
	}
	buf := make([]byte, 10)
	if err := ReadChunk(bytes.NewReader(append(AppendChunkHeader(nil, 11), make([]byte, 11)...)), buf); !errors.Is(err, ErrBadChunk) {
		t.Fatalf("chunk of the wrong length: %v", err)
	}
	if err := ReadChunk(bytes.NewReader([]byte{7}), buf); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad status: %v", err)
	}
}

func TestPoissonDelay(t *testing.T) {
	mean := time.Second
	tests := []struct {
		u    float64
		want time.Duration
	}{
		{0, 0},
		{1 - 1/2.718281828459045, time.Second},
		{0.5, 693147180 * time.Nanosecond},
		{0.9999999999, 10 * time.Second}, // capped at ten means
	}
	for _, tt := range tests {
		got := PoissonDelay(mean, tt.u)
		if d := got - tt.want; d < -time.Millisecond || d > time.Millisecond {
			t.Fatalf("PoissonDelay(%v) = %v, want %v", tt.u, got, tt.want)
		}
	}
}

func FuzzDecodeManifest(f *testing.F) {
	m, _, _ := testManifest(f, bytes.Repeat([]byte{1}, 40000), MinChunkSize)
	raw, _ := m.Encode()
	f.Add(raw)
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeManifest(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		back, err := m.Encode()
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("decoded manifest re-encodes to %x (%v), not %x", back, err, b)
		}
	})
}

func FuzzReadRequest(f *testing.F) {
	for _, r := range []Request{{Kind: KindInv, IDs: []ID{{1}}}, {Kind: KindGetData, IDs: []ID{{2}}, First: 1, Count: 3}} {
		b, _ := r.Encode()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ReadRequest(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		back, err := r.Encode()
		if err != nil || !bytes.Equal(back, b[:len(back)]) {
			t.Fatalf("request re-encodes to %x (%v), read from %x", back, err, b)
		}
	})
}

func FuzzReadAnswers(f *testing.F) {
	data := bytes.Repeat([]byte{5}, 50000)
	m, id, leaves := testManifest(f, data, MinChunkSize)
	raw, _ := m.Encode()
	f.Add(AppendManifestAnswer(nil, raw))
	f.Add(AppendLeavesAnswer(nil, leaves))
	f.Add(append(AppendChunkHeader(nil, 16), make([]byte, 16)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, _, err := ReadManifestAnswer(bytes.NewReader(b), id, "bitmesh"); err == nil {
			if gid, _ := got.ID(); gid != id {
				t.Fatalf("accepted the manifest of %s for %s", gid, id)
			}
		}
		if got, err := ReadLeavesAnswer(bytes.NewReader(b), m); err == nil && TreeRoot(got) != m.Root {
			t.Fatal("accepted leaves that do not hash to the root")
		}
		buf := make([]byte, 16)
		if err := ReadChunk(bytes.NewReader(b), buf); err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadChunk) && !errors.Is(err, ErrNotFound) {
			t.Fatalf("chunk error %v wraps no sentinel", err)
		}
	})
}

// The vector of TestManifestVector, also in PROTOCOL.md §20.6.
const (
	manifestVectorRoot     = "6cb2dba69c40f6d89a7339f7a9254dae01ea6cee11582e2cc2d120f32cac7d79"
	manifestVectorID       = "5026c26962cc8d6be75ca64422c362e4fedfec0d0036a26d96f9acf9d9eb19b7"
	manifestVectorUnsigned = "01076269746d657368989c0b76cb563971fdc9bef31ec06c3560f3249d6ee9e5d83c57625596e05f6f000000006ab13b80086669726d776172650676312e62696e0000000000011170000040006cb2dba69c40f6d89a7339f7a9254dae01ea6cee11582e2cc2d120f32cac7d79c23d5e8e16aec61f9d4ffa078f2df518b1a33dbf0698d5da900994a306f09c9a0000000000000000000000000000000000000000000000000000000000000000"
)

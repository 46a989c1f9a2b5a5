package meshlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"testing"

	"github.com/bitmesh/bitmesh/anchor"
	"github.com/bitmesh/bitmesh/identity"
)

// testOwnCheckpoint signs a checkpoint of size with a fresh key.
func testOwnCheckpoint(t testing.TB, size uint64, anchors ...anchor.AnchorProof) ownCheckpoint {
	t.Helper()
	key, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	c := anchor.Checkpoint{Origin: Origin("test", key.DeviceID(), "sensors/t"), Size: size, Root: [32]byte{byte(size)}}
	note, err := anchor.SignCheckpoint(c, key)
	if err != nil {
		t.Fatal(err)
	}
	return ownCheckpoint{c: c, note: note, anchors: anchors}
}

func TestCheckpointRecordRoundTrip(t *testing.T) {
	proof := anchor.AnchorProof{Kind: anchor.KindOpenTimestamps, Digest: [32]byte{9}, Pending: true, Proof: []byte("ots")}
	confirmed := anchor.AnchorProof{Kind: anchor.KindBitcoinOpReturn, Digest: [32]byte{8}, Proof: bytes.Repeat([]byte{1}, anchor.MaxAnchorProofSize)}
	tests := []struct {
		name string
		own  ownCheckpoint
	}{
		{"signed only", testOwnCheckpoint(t, 1)},
		{"cosigned", func() ownCheckpoint {
			own := testOwnCheckpoint(t, 2)
			own.cosigners = []identity.DeviceID{{1}, {2}}
			return own
		}()},
		{"anchored", testOwnCheckpoint(t, 3, proof, confirmed)},
		{"empty proof", testOwnCheckpoint(t, 4, anchor.AnchorProof{Kind: "x"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := decodeCheckpointRecord(encodeCheckpointRecord(tt.own))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rec.note, tt.own.note) || !reflect.DeepEqual(rec.cosigners, tt.own.cosigners) {
				t.Fatalf("note or cosigners changed: %+v", rec)
			}
			if len(rec.anchors) != len(tt.own.anchors) {
				t.Fatalf("%d anchors, want %d", len(rec.anchors), len(tt.own.anchors))
			}
			for i, p := range rec.anchors {
				if !sameProof(p, tt.own.anchors[i]) {
					t.Fatalf("anchor %d = %+v, want %+v", i, p, tt.own.anchors[i])
				}
			}
		})
	}
}

func TestDecodeCheckpointRecordRejects(t *testing.T) {
	valid := encodeCheckpointRecord(testOwnCheckpoint(t, 5, anchor.AnchorProof{Kind: "k", Proof: []byte("p")}))
	uv := func(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
	tests := []struct {
		name string
		rec  []byte
	}{
		{"empty", nil},
		{"unknown version", append([]byte{2}, valid[1:]...)},
		{"cut short", valid[:len(valid)-1]},
		{"trailing byte", append(bytes.Clone(valid), 0)},
		{"empty note", uv(uv(uv([]byte{1}, 0), 0), 0)},
		{"note too large", uv([]byte{1}, anchor.MaxSignedCheckpointSize+1)},
		{"note length overflows", append([]byte{1}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)},
		{"too many cosigners", uv(uv([]byte{1}, 1), maxRecordCosigners+1)},
		{"too many anchors", uv(uv(uv([]byte{1, 1, 'n'}, 0), maxRecordAnchors+1), 0)},
		{"anchor kind too long", uv(uv(uv([]byte{1, 1, 'n'}, 0), 1), maxAnchorKindLen+1)},
		{"bad pending flag", append(append(uv(uv(uv(uv([]byte{1, 1, 'n'}, 0), 1), 1), 'k'), make([]byte, 32)...), 2, 0)},
		{"proof too large", append(append(uv(uv(uv(uv([]byte{1, 1, 'n'}, 0), 1), 1), 'k'), make([]byte, 32)...), uv([]byte{0}, anchor.MaxAnchorProofSize+1)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeCheckpointRecord(tt.rec); !errors.Is(err, ErrCheckpointRecord) {
				t.Fatalf("decode: %v, want ErrCheckpointRecord", err)
			}
		})
	}
}

func FuzzDecodeCheckpointRecord(f *testing.F) {
	f.Add(encodeCheckpointRecord(testOwnCheckpoint(f, 7)))
	f.Add(encodeCheckpointRecord(testOwnCheckpoint(f, 8, anchor.AnchorProof{Kind: anchor.KindOpenTimestamps, Pending: true, Proof: []byte{1, 2}})))
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := decodeCheckpointRecord(b)
		if err != nil {
			if !errors.Is(err, ErrCheckpointRecord) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(rec.note) > anchor.MaxSignedCheckpointSize || len(rec.cosigners) > maxRecordCosigners || len(rec.anchors) > maxRecordAnchors {
			t.Fatalf("bounds not enforced: %d-byte note, %d cosigners, %d anchors", len(rec.note), len(rec.cosigners), len(rec.anchors))
		}
		// What decodes encodes back to the same bytes: one encoding per record.
		own := ownCheckpoint{note: rec.note, cosigners: rec.cosigners, anchors: rec.anchors}
		if again := encodeCheckpointRecord(own); !bytes.Equal(again, b) {
			t.Fatalf("re-encoded %x, decoded from %x", again, b)
		}
	})
}

// TestRetain checks which own checkpoints survive: the newest
// maxOwnCheckpoints, and of each anchor kind the newest confirmed one.
func TestRetain(t *testing.T) {
	ots := func(pending bool) anchor.AnchorProof {
		return anchor.AnchorProof{Kind: anchor.KindOpenTimestamps, Pending: pending}
	}
	btc := anchor.AnchorProof{Kind: anchor.KindBitcoinOpReturn}
	tests := []struct {
		name    string
		count   int
		anchors map[int][]anchor.AnchorProof // by index, oldest first
		want    []uint64                     // sizes dropped
	}{
		{"under the bound", maxOwnCheckpoints, nil, nil},
		{"oldest dropped", maxOwnCheckpoints + 2, nil, []uint64{1, 2}},
		{"anchored kept", maxOwnCheckpoints + 3, map[int][]anchor.AnchorProof{1: {ots(false)}}, []uint64{1, 3}},
		{"only the newest anchored of a kind", maxOwnCheckpoints + 3, map[int][]anchor.AnchorProof{0: {ots(false)}, 1: {ots(false)}}, []uint64{1, 3}},
		{"each kind kept", maxOwnCheckpoints + 3, map[int][]anchor.AnchorProof{0: {btc}, 1: {ots(false)}}, []uint64{3}},
		{"pending not kept", maxOwnCheckpoints + 1, map[int][]anchor.AnchorProof{0: {ots(true)}}, []uint64{1}},
		{"anchored among the newest", maxOwnCheckpoints + 1, map[int][]anchor.AnchorProof{5: {ots(false)}}, []uint64{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cps []ownCheckpoint
			for i := range tt.count {
				cps = append(cps, ownCheckpoint{c: anchor.Checkpoint{Size: uint64(i + 1)}, anchors: tt.anchors[i]})
			}
			kept, dropped := retain(cps)
			var got []uint64
			for _, own := range dropped {
				got = append(got, own.c.Size)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("dropped %v, want %v", got, tt.want)
			}
			if len(kept)+len(dropped) != len(cps) || kept[len(kept)-1].c.Size != uint64(tt.count) {
				t.Fatalf("kept %d (newest %d) of %d", len(kept), kept[len(kept)-1].c.Size, len(cps))
			}
		})
	}
}

// TestStoredCheckpointsFollowRetain signs more checkpoints than are kept,
// anchors an old one, and expects the store to hold exactly the kept ones,
// which a fresh load gets back.
func TestStoredCheckpointsFollowRetain(t *testing.T) {
	const count = maxOwnCheckpoints + 6
	key, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	store := anchor.NewMemoryStore()
	open := func() *topicLog {
		l, err := anchor.OpenLog(store, "topic/t")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return &topicLog{topic: "t", origin: Origin("test", key.DeviceID(), "t"), log: l, meta: store}
	}
	tl := open()
	confirmed := anchor.AnchorProof{Kind: anchor.KindOpenTimestamps, Proof: []byte("ots")}
	for size := uint64(1); size <= count; size++ {
		if _, err := tl.log.Append([][]byte{fmt.Appendf(nil, "leaf %d", size)}); err != nil {
			t.Fatal(err)
		}
		root, err := tl.log.RootAt(size)
		if err != nil {
			t.Fatal(err)
		}
		c := anchor.Checkpoint{Origin: tl.origin, Size: size, Root: root}
		note, err := anchor.SignCheckpoint(c, key)
		if err != nil {
			t.Fatal(err)
		}
		if latest, err := tl.addCheckpoint(ownCheckpoint{c: c, note: note}); latest != nil || err != nil {
			t.Fatalf("addCheckpoint(%d) = %q, %v", size, latest, err)
		}
		if size == 2 {
			if err := tl.setAnchor(2, confirmed); err != nil {
				t.Fatal(err)
			}
		}
	}
	keys, err := store.MetaKeys("topic/t", checkpointKeyPrefix)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{checkpointKey(2)}
	for size := uint64(count - maxOwnCheckpoints + 1); size <= count; size++ {
		want = append(want, checkpointKey(size))
	}
	if fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Fatalf("stored %q, want %q", keys, want)
	}
	fresh := open()
	if err := fresh.loadCheckpoints(key.DeviceID(), slog.Default(), "memory"); err != nil {
		t.Fatal(err)
	}
	if len(fresh.checkpoints) != len(want) || fresh.checkpoints[0].c.Size != 2 || len(fresh.checkpoints[0].anchors) != 1 {
		t.Fatalf("loaded %d checkpoints, oldest %+v", len(fresh.checkpoints), fresh.checkpoints[0].c)
	}
	for i, own := range fresh.checkpoints {
		if !bytes.Equal(own.note, tl.checkpoints[i].note) {
			t.Fatalf("checkpoint %d loaded with another note", own.c.Size)
		}
	}
}

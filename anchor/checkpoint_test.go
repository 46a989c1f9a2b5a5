package anchor

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/bitmesh/bitmesh/identity"
)

const ckptOrigin = "bitmesh.example/log"

var ckptNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ckptKey(tb testing.TB, seed byte) *identity.PrivateKey {
	tb.Helper()
	k, err := identity.PrivateKeyFromBytes(bytes.Repeat([]byte{seed}, identity.PrivateKeySize))
	if err != nil {
		tb.Fatalf("key from seed %#x: %v", seed, err)
	}
	return k
}

func ckptRoot(b byte) [32]byte {
	var r [32]byte
	for i := range r {
		r[i] = b + byte(i)
	}
	return r
}

func mustSign(tb testing.TB, c Checkpoint, key *identity.PrivateKey) []byte {
	tb.Helper()
	signed, err := SignCheckpoint(c, key)
	if err != nil {
		tb.Fatalf("SignCheckpoint: %v", err)
	}
	return signed
}

func mustCosign(tb testing.TB, signed []byte, w *identity.PrivateKey) []byte {
	tb.Helper()
	out, err := Cosign(signed, w, ckptNow)
	if err != nil {
		tb.Fatalf("Cosign: %v", err)
	}
	return out
}

func TestCheckpointMarshalRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Checkpoint
		want string
	}{
		{"empty tree", Checkpoint{Origin: "o", Size: 0}, "o\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"},
		{"typical", Checkpoint{Origin: ckptOrigin, Size: 20852163, Root: ckptRoot(1)}, ""},
		{"max size", Checkpoint{Origin: "o", Size: ^uint64(0), Root: ckptRoot(9)}, ""},
		{"extensions", Checkpoint{Origin: "o", Size: 3, Root: ckptRoot(2), Extensions: []string{"ext one", "— two"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.c.Marshal()
			if tc.want != "" && string(body) != tc.want {
				t.Fatalf("Marshal = %q, want %q", body, tc.want)
			}
			got, err := ParseCheckpoint(body)
			if err != nil {
				t.Fatalf("ParseCheckpoint(%q): %v", body, err)
			}
			if !bytes.Equal(got.Marshal(), body) || got.Origin != tc.c.Origin || got.Size != tc.c.Size || got.Root != tc.c.Root {
				t.Fatalf("round trip: got %+v, want %+v", got, tc.c)
			}
		})
	}
}

func TestParseCheckpointRejects(t *testing.T) {
	root := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, tc := range []struct {
		name string
		body string
	}{
		{"empty", ""},
		{"no final newline", "o\n1\n" + root},
		{"two lines", "o\n1\n"},
		{"empty origin", "\n1\n" + root + "\n"},
		{"origin with space", "a b\n1\n" + root + "\n"},
		{"origin with plus", "a+b\n1\n" + root + "\n"},
		{"origin with tab", "a\tb\n1\n" + root + "\n"},
		{"origin invalid utf8", "a\xffb\n1\n" + root + "\n"},
		{"size leading zero", "o\n01\n" + root + "\n"},
		{"size plus sign", "o\n+1\n" + root + "\n"},
		{"size negative", "o\n-1\n" + root + "\n"},
		{"size empty", "o\n\n" + root + "\n"},
		{"size overflow", "o\n18446744073709551616\n" + root + "\n"},
		{"size hex", "o\n0x10\n" + root + "\n"},
		{"root 31 bytes", "o\n1\n" + base64.StdEncoding.EncodeToString(make([]byte, 31)) + "\n"},
		{"root 33 bytes", "o\n1\n" + base64.StdEncoding.EncodeToString(make([]byte, 33)) + "\n"},
		{"root non-canonical padding bits", "o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n"},
		{"root unpadded", "o\n1\n" + strings.TrimSuffix(root, "=") + "\n"},
		{"root url alphabet", "o\n1\n" + strings.Repeat("_", 43) + "=\n"},
		{"empty extension (trailing blank line)", "o\n1\n" + root + "\n\n"},
		{"extension control char", "o\n1\n" + root + "\nx\x01\n"},
		{"oversize", "o\n1\n" + root + "\n" + strings.Repeat("x", MaxCheckpointSize) + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCheckpoint([]byte(tc.body))
			if !errors.Is(err, ErrCheckpointMalformed) {
				t.Fatalf("ParseCheckpoint(%q) = %+v, %v; want ErrCheckpointMalformed", tc.body, c, err)
			}
		})
	}
}

func TestSignCheckpointRejectsInvalid(t *testing.T) {
	key := ckptKey(t, 1)
	for _, tc := range []struct {
		name string
		c    Checkpoint
	}{
		{"empty origin", Checkpoint{}},
		{"origin with newline", Checkpoint{Origin: "a\nb"}},
		{"empty extension", Checkpoint{Origin: "o", Extensions: []string{""}}},
		{"extension with newline", Checkpoint{Origin: "o", Extensions: []string{"a\nb"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := SignCheckpoint(tc.c, key); !errors.Is(err, ErrCheckpointMalformed) {
				t.Fatalf("SignCheckpoint = %v, want ErrCheckpointMalformed", err)
			}
		})
	}
}

func TestOpenCheckpoint(t *testing.T) {
	logKey, other, witness := ckptKey(t, 1), ckptKey(t, 2), ckptKey(t, 3)
	c := Checkpoint{Origin: ckptOrigin, Size: 10, Root: ckptRoot(7)}
	signed := mustSign(t, c, logKey)
	body := c.Marshal()
	cosignedOnly := func() []byte { // the log's line removed, a witness's kept
		lines := strings.SplitAfter(string(mustCosign(t, signed, witness)), "\n")
		return []byte(string(body) + "\n" + lines[len(lines)-2])
	}()
	for _, tc := range []struct {
		name   string
		msg    []byte
		key    identity.DeviceID
		origin string
		want   error
	}{
		{"valid", signed, logKey.DeviceID(), ckptOrigin, nil},
		{"valid with cosignature", mustCosign(t, signed, witness), logKey.DeviceID(), ckptOrigin, nil},
		{"other key", signed, other.DeviceID(), ckptOrigin, ErrCheckpointSignature},
		{"signed by other key", mustSign(t, c, other), logKey.DeviceID(), ckptOrigin, ErrCheckpointSignature},
		{"other origin", signed, logKey.DeviceID(), "elsewhere.example/log", ErrOriginMismatch},
		{"invalid expected origin", signed, logKey.DeviceID(), "bad origin", ErrCheckpointMalformed},
		{"tampered size", bytes.Replace(signed, []byte("\n10\n"), []byte("\n11\n"), 1), logKey.DeviceID(), ckptOrigin, ErrCheckpointSignature},
		{"only a cosignature", cosignedOnly, logKey.DeviceID(), ckptOrigin, ErrCheckpointSignature},
		{"body only", body, logKey.DeviceID(), ckptOrigin, ErrCheckpointMalformed},
		{"empty", nil, logKey.DeviceID(), ckptOrigin, ErrCheckpointMalformed},
		{"oversize", append(bytes.Repeat([]byte("x"), MaxSignedCheckpointSize), signed...), logKey.DeviceID(), ckptOrigin, ErrCheckpointMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := OpenCheckpoint(tc.msg, tc.key, tc.origin)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("OpenCheckpoint: %v", err)
				}
				if !bytes.Equal(got.Marshal(), body) {
					t.Fatalf("OpenCheckpoint body = %q, want %q", got.Marshal(), body)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("OpenCheckpoint = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestNoteInterop checks the signers and verifiers against x/mod's note
// package directly, and the key ID against the C2SP formula.
func TestNoteInterop(t *testing.T) {
	key := ckptKey(t, 1)
	s, err := NewCheckpointSigner(ckptOrigin, key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewCheckpointVerifier(ckptOrigin, key.DeviceID())
	if err != nil {
		t.Fatal(err)
	}
	id := key.DeviceID()
	h := sha256.Sum256(append([]byte(ckptOrigin+"\n\xffbitmesh/bip340-checkpoint"), id[:]...))
	if want := binary.BigEndian.Uint32(h[:]); s.KeyHash() != want || v.KeyHash() != want {
		t.Fatalf("key IDs %08x, %08x; want %08x", s.KeyHash(), v.KeyHash(), want)
	}
	msg, err := note.Sign(&note.Note{Text: "any text\n"}, s)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil || n.Text != "any text\n" {
		t.Fatalf("note.Open = %+v, %v", n, err)
	}
	if _, err := NewCheckpointSigner("has space", key); !errors.Is(err, ErrCheckpointMalformed) {
		t.Fatalf("NewCheckpointSigner with space = %v", err)
	}
}

func TestCosign(t *testing.T) {
	logKey, w1, w2, stranger := ckptKey(t, 1), ckptKey(t, 3), ckptKey(t, 4), ckptKey(t, 5)
	c := Checkpoint{Origin: ckptOrigin, Size: 10, Root: ckptRoot(7)}
	signed := mustSign(t, c, logKey)
	two := mustCosign(t, mustCosign(t, signed, w1), w2)
	three := mustCosign(t, two, stranger)
	trusted := []identity.DeviceID{w1.DeviceID(), w2.DeviceID()}

	// Corrupt w1's cosignature: flip the last byte of its BIP-340 signature.
	lines := strings.Split(string(two), "\n")
	w1Line := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "— "+WitnessName(w1.DeviceID())+" ") {
			w1Line = i
		}
	}
	if w1Line < 0 {
		t.Fatalf("no line for witness 1 in %q", two)
	}
	name, b64, _ := strings.Cut(strings.TrimPrefix(lines[w1Line], "— "), " ")
	raw, _ := base64.StdEncoding.DecodeString(b64)
	raw[len(raw)-1] ^= 1
	bad := append([]string(nil), lines...)
	bad[w1Line] = "— " + name + " " + base64.StdEncoding.EncodeToString(raw)
	corrupted := []byte(strings.Join(bad, "\n"))

	for _, tc := range []struct {
		name      string
		msg       []byte
		witnesses []identity.DeviceID
		want      int
		wantErr   error
	}{
		{"two trusted", two, trusted, 2, nil},
		{"stranger ignored", three, trusted, 2, nil},
		{"no witnesses trusted", two, nil, 0, nil},
		{"duplicate trusted witness", two, append(trusted, w1.DeviceID()), 2, nil},
		{"uncosigned", signed, trusted, 0, nil},
		{"corrupted cosignature", corrupted, trusted, 0, ErrCosignature},
		{"corrupted but untrusted", corrupted, trusted[1:], 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, cosigners, err := VerifyCosignatures(tc.msg, logKey.DeviceID(), tc.witnesses, ckptOrigin)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("VerifyCosignatures = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("VerifyCosignatures: %v", err)
			}
			if len(cosigners) != tc.want || got.Size != c.Size {
				t.Fatalf("cosigners = %v (size %d), want %d", cosigners, got.Size, tc.want)
			}
		})
	}

	t.Run("cosignature/v1 message and timestamp", func(t *testing.T) {
		_, b64, _ := strings.Cut(strings.TrimPrefix(lines[w1Line], "— "), " ")
		raw, _ := base64.StdEncoding.DecodeString(b64)
		if len(raw) != 4+8+64 {
			t.Fatalf("cosignature of %d bytes, want 76", len(raw))
		}
		ts := binary.BigEndian.Uint64(raw[4:])
		if ts != uint64(ckptNow.Unix()) {
			t.Fatalf("timestamp %d, want %d", ts, ckptNow.Unix())
		}
		msg := "cosignature/v1\ntime " + strconv.FormatUint(ts, 10) + "\n" + string(c.Marshal())
		if err := w1.DeviceID().Verify(identity.DomainCheckpoint, []byte(msg), identity.Signature(raw[12:])); err != nil {
			t.Fatalf("independent verification: %v", err)
		}
	})
	t.Run("recosign replaces", func(t *testing.T) {
		again := mustCosign(t, two, w1)
		if got, want := strings.Count(string(again), "\n— "), strings.Count(string(two), "\n— "); got != want {
			t.Fatalf("%d signature lines after recosigning, want %d", got, want)
		}
	})
	t.Run("rejects", func(t *testing.T) {
		if _, err := Cosign(signed, w1, time.Unix(-1, 0)); err == nil {
			t.Fatal("Cosign before 1970 succeeded")
		}
		if _, err := Cosign(c.Marshal(), w1, ckptNow); !errors.Is(err, ErrCheckpointMalformed) {
			t.Fatalf("Cosign of unsigned body = %v", err)
		}
		s, _ := NewCheckpointSigner("o", logKey)
		notCkpt, _ := note.Sign(&note.Note{Text: "not a checkpoint\n"}, s)
		if _, err := Cosign(notCkpt, w1, ckptNow); !errors.Is(err, ErrCheckpointMalformed) {
			t.Fatalf("Cosign of non-checkpoint = %v", err)
		}
	})
}

func TestEquivocation(t *testing.T) {
	logKey, other := ckptKey(t, 1), ckptKey(t, 2)
	at := func(size uint64, root byte, key *identity.PrivateKey) []byte {
		return mustSign(t, Checkpoint{Origin: ckptOrigin, Size: size, Root: ckptRoot(root)}, key)
	}
	for _, tc := range []struct {
		name string
		e    Equivocation
		want error
	}{
		{"same size, different roots", Equivocation{at(5, 1, logKey), at(5, 2, logKey)}, nil},
		{"same checkpoint", Equivocation{at(5, 1, logKey), at(5, 1, logKey)}, ErrNotEquivocation},
		{"different sizes", Equivocation{at(5, 1, logKey), at(6, 2, logKey)}, ErrNotEquivocation},
		{"A by another key", Equivocation{at(5, 1, other), at(5, 2, logKey)}, ErrCheckpointSignature},
		{"B malformed", Equivocation{at(5, 1, logKey), []byte("junk")}, ErrCheckpointMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.e.Verify(logKey.DeviceID(), ckptOrigin)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzParseCheckpoint: never panics; accepts only canonical bodies.
func FuzzParseCheckpoint(f *testing.F) {
	f.Add(Checkpoint{Origin: ckptOrigin, Size: 10, Root: ckptRoot(7)}.Marshal())
	f.Add(Checkpoint{Origin: "o", Size: 0, Extensions: []string{"x"}}.Marshal())
	f.Add([]byte("o\n01\nAAAA\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := ParseCheckpoint(body)
		if err != nil {
			if !errors.Is(err, ErrCheckpointMalformed) {
				t.Fatalf("error %v does not wrap ErrCheckpointMalformed", err)
			}
			return
		}
		if !bytes.Equal(c.Marshal(), body) {
			t.Fatalf("accepted non-canonical %q (re-marshals to %q)", body, c.Marshal())
		}
	})
}

// FuzzOpenCheckpoint: never panics; what opens is a canonical checkpoint.
func FuzzOpenCheckpoint(f *testing.F) {
	logKey, w := ckptKey(f, 1), ckptKey(f, 3)
	signed := mustSign(f, Checkpoint{Origin: ckptOrigin, Size: 10, Root: ckptRoot(7)}, logKey)
	f.Add(signed)
	f.Add(mustCosign(f, signed, w))
	f.Add([]byte("o\n1\n\n— o AAAAAA==\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		c, cosigners, err := VerifyCosignatures(msg, logKey.DeviceID(), []identity.DeviceID{w.DeviceID()}, ckptOrigin)
		if err != nil {
			return
		}
		if len(cosigners) > 1 || c.Validate() != nil {
			t.Fatalf("accepted %+v with cosigners %v", c, cosigners)
		}
	})
}

package identity

import (
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// bip340Vector is one row of the official BIP-340 test vectors
// (testdata/bip340-test-vectors.csv, from the bips repository).
type bip340Vector struct {
	index   int
	secret  []byte // nil when the row has no secret key
	pubkey  []byte
	aux     []byte // nil when the row has no aux_rand
	msg     []byte
	sig     []byte
	valid   bool
	comment string
}

func loadBIP340Vectors(t *testing.T) []bip340Vector {
	t.Helper()
	f, err := os.Open("testdata/bip340-test-vectors.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	records, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("parsing CSV: %v", err)
	}
	if len(records) < 2 {
		t.Fatalf("CSV has %d records, want a header and vectors", len(records))
	}
	wantHeader := []string{"index", "secret key", "public key", "aux_rand", "message", "signature", "verification result", "comment"}
	if got := records[0]; strings.Join(got, ",") != strings.Join(wantHeader, ",") {
		t.Fatalf("CSV header = %q, want %q", got, wantHeader)
	}
	decode := func(row int, col, s string) []byte {
		if s == "" {
			return nil
		}
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatalf("row %d: column %s: %v", row, col, err)
		}
		return b
	}
	var out []bip340Vector
	for i, r := range records[1:] {
		idx, err := strconv.Atoi(r[0])
		if err != nil {
			t.Fatalf("record %d: index %q: %v", i+1, r[0], err)
		}
		var valid bool
		switch r[6] {
		case "TRUE":
			valid = true
		case "FALSE":
		default:
			t.Fatalf("row %d: verification result %q", idx, r[6])
		}
		out = append(out, bip340Vector{
			index:   idx,
			secret:  decode(idx, "secret key", r[1]),
			pubkey:  decode(idx, "public key", r[2]),
			aux:     decode(idx, "aux_rand", r[3]),
			msg:     decode(idx, "message", r[4]),
			sig:     decode(idx, "signature", r[5]),
			valid:   valid,
			comment: r[7],
		})
	}
	return out
}

func to32(t *testing.T, what string, b []byte) [32]byte {
	t.Helper()
	if len(b) != 32 {
		t.Fatalf("%s is %d bytes, want 32", what, len(b))
	}
	return [32]byte(b)
}

func TestBIP340Vectors(t *testing.T) {
	vectors := loadBIP340Vectors(t)
	if len(vectors) != 15 {
		t.Fatalf("loaded %d vectors, want rows 0-14", len(vectors))
	}
	for i, v := range vectors {
		if v.index != i {
			t.Fatalf("record %d has index %d", i, v.index)
		}
		name := strconv.Itoa(v.index)
		if v.comment != "" {
			name += " " + v.comment
		}
		t.Run(name, func(t *testing.T) {
			msg := to32(t, "message", v.msg)
			if len(v.sig) != SignatureSize {
				t.Fatalf("signature is %d bytes", len(v.sig))
			}
			sig := Signature(v.sig)
			// Copy the public key raw: rows 5 and 14 hold keys that
			// ParseDeviceID would (rightly) refuse.
			id := DeviceID(to32(t, "public key", v.pubkey))

			if v.secret != nil {
				key, err := PrivateKeyFromBytes(v.secret)
				if err != nil {
					t.Fatalf("PrivateKeyFromBytes: %v", err)
				}
				if got, want := key.DeviceID().Hex(), strings.ToLower(hex.EncodeToString(v.pubkey)); got != want {
					t.Errorf("DeviceID = %s, want %s", got, want)
				}
				got, err := SignBIP340(key, msg, to32(t, "aux_rand", v.aux))
				if err != nil {
					t.Fatalf("SignBIP340: %v", err)
				}
				if got != sig {
					t.Errorf("SignBIP340 = %X\nwant          %X", got, sig)
				}
			}

			err := VerifyBIP340(id, msg, sig)
			if v.valid {
				if err != nil {
					t.Fatalf("VerifyBIP340 = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("VerifyBIP340 = nil, want an error")
			}
			// Rows 5 and 14 carry an invalid public key, which must be
			// reported as such; every other failure is a bad signature.
			if v.index == 5 || v.index == 14 {
				if !errors.Is(err, ErrBadDeviceID) {
					t.Errorf("VerifyBIP340 with invalid key = %v, want ErrBadDeviceID", err)
				}
			} else if !errors.Is(err, ErrBadSignature) {
				t.Errorf("VerifyBIP340 = %v, want ErrBadSignature", err)
			}
		})
	}
}

// TestBIP340InvalidKeyRows pins the two vectors whose public key itself is
// invalid: the key must be refused everywhere a DeviceID is lifted to a point.
func TestBIP340InvalidKeyRows(t *testing.T) {
	vectors := loadBIP340Vectors(t)
	for _, idx := range []int{5, 14} {
		v := vectors[idx]
		t.Run(fmt.Sprintf("%d %s", idx, v.comment), func(t *testing.T) {
			id := DeviceID(to32(t, "public key", v.pubkey))
			if err := VerifyBIP340(id, [32]byte(v.msg), Signature(v.sig)); !errors.Is(err, ErrBadDeviceID) {
				t.Errorf("VerifyBIP340 = %v, want ErrBadDeviceID", err)
			}
			if _, err := ParseDeviceID(id.String()); !errors.Is(err, ErrBadDeviceID) {
				t.Errorf("ParseDeviceID = %v, want ErrBadDeviceID", err)
			}
			if _, err := id.ParsePublicKey(); !errors.Is(err, ErrBadDeviceID) {
				t.Errorf("ParsePublicKey = %v, want ErrBadDeviceID", err)
			}
			if _, err := id.PeerID(); !errors.Is(err, ErrBadDeviceID) {
				t.Errorf("PeerID = %v, want ErrBadDeviceID", err)
			}
		})
	}
}

package identity

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testLogN keeps scrypt cheap in tests; the file format is the same.
const testLogN = 4

var testPass = []byte("pw")

// scryptBudget bounds N*r*p for key files decoded in tests and fuzzing.
// DecodeKeyFile bounds logN but not r or p, so a mutated header can ask
// scrypt for about 32 GiB (N=2^20, r=255) and 255 passes (p=255); such
// inputs are not fed to it here.
const scryptBudget = 1 << 16

// scryptTooCostly reports whether data is an encrypted key file whose scrypt
// parameters pass DecodeKeyFile's checks but exceed scryptBudget.
func scryptTooCostly(data []byte) bool {
	if len(data) != encFileLen || string(data[:len(keyMagic)]) != keyMagic ||
		data[len(keyMagic)] != keyVersion || data[len(keyMagic)+1] != kindEncrypted {
		return false
	}
	logN, r, p := data[headerLen], data[headerLen+1], data[headerLen+2]
	if logN < 1 || logN > maxLogN || r != scryptR || p != scryptP {
		return false // rejected before scrypt runs
	}
	return uint64(r)*uint64(p)<<logN > scryptBudget
}

func mustEncode(t testing.TB, key *PrivateKey, pass []byte) []byte {
	t.Helper()
	data, err := encodeKeyFile(key, pass, testLogN)
	if err != nil {
		t.Fatalf("encodeKeyFile: %v", err)
	}
	return data
}

// plainFile builds a plain key file around an arbitrary 32-byte secret, with
// a valid checksum.
func plainFile(secret []byte) []byte {
	out := append([]byte(keyMagic), keyVersion, kindPlain)
	out = append(out, secret...)
	sum := sha256.Sum256(out)
	return append(out, sum[:4]...)
}

// encryptedFile builds an encrypted key file around an arbitrary secret,
// properly sealed under pass.
func encryptedFile(t testing.TB, secret, pass []byte) []byte {
	t.Helper()
	out := append([]byte(keyMagic), keyVersion, kindEncrypted, testLogN, scryptR, scryptP)
	out = append(out, bytes.Repeat([]byte{0x5A}, saltLen)...)
	out = append(out, bytes.Repeat([]byte{0xA5}, encParamsLen-3-saltLen)...)
	aead, err := keyFileAEAD(pass, out[headerLen+3:headerLen+3+saltLen], testLogN, scryptR, scryptP)
	if err != nil {
		t.Fatal(err)
	}
	ad := bytes.Clone(out)
	return aead.Seal(out, out[headerLen+3+saltLen:], secret, ad)
}

// decodeNoPanic runs DecodeKeyFile, turning a panic into a test failure.
func decodeNoPanic(t *testing.T, data, pass []byte) (k *PrivateKey, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("DecodeKeyFile(%x) panicked: %v", data, r)
		}
	}()
	k, err = DecodeKeyFile(data, pass)
	if (k == nil) == (err == nil) {
		t.Fatalf("DecodeKeyFile returned key %v and error %v", k, err)
	}
	return k, err
}

func writeKeyFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dirNames lists a directory, to catch leftover temporary files.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func sameKey(a, b *PrivateKey) bool {
	return a != nil && b != nil && a.DeviceID() == b.DeviceID() && bytes.Equal(a.Bytes(), b.Bytes())
}

func TestKeyPath(t *testing.T) {
	if got, want := KeyPath(filepath.Join("a", "b")), filepath.Join("a", "b", "identity.key"); got != want {
		t.Errorf("KeyPath = %q, want %q", got, want)
	}
}

func TestLoadOrCreate(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "data", "node")
	path := KeyPath(dir)

	if _, err := Load(path, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of missing file = %v, want fs.ErrNotExist", err)
	}

	k1, created, err := LoadOrCreate(path, nil)
	if err != nil {
		t.Fatalf("first LoadOrCreate: %v", err)
	}
	if !created {
		t.Error("first LoadOrCreate: created = false, want true")
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %04o, want 0600", perm)
	}
	if !st.Mode().IsRegular() {
		t.Errorf("key file mode %v, want a regular file", st.Mode())
	}
	for _, d := range []string{filepath.Join(root, "data"), dir} {
		dst, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if perm := dst.Mode().Perm(); perm != 0o700 {
			t.Errorf("created directory %s mode %04o, want 0700", d, perm)
		}
	}
	if names := dirNames(t, dir); len(names) != 1 || names[0] != KeyFileName {
		t.Errorf("directory holds %q, want only %s", names, KeyFileName)
	}
	onDisk := readFile(t, path)
	if len(onDisk) != plainFileLen {
		t.Errorf("plain key file is %d bytes, want %d", len(onDisk), plainFileLen)
	}

	k2, created, err := LoadOrCreate(path, nil)
	if err != nil {
		t.Fatalf("second LoadOrCreate: %v", err)
	}
	if created {
		t.Error("second LoadOrCreate: created = true, want false")
	}
	if !sameKey(k1, k2) {
		t.Errorf("second LoadOrCreate loaded %s, want %s", k2.DeviceID(), k1.DeviceID())
	}
	k3, err := Load(path, nil)
	if err != nil || !sameKey(k1, k3) {
		t.Errorf("Load = %v, %v; want %s", k3, err, k1.DeviceID())
	}
	if !bytes.Equal(readFile(t, path), onDisk) {
		t.Error("loading rewrote the key file")
	}
}

func TestEncodeKeyFileLayout(t *testing.T) {
	key := mustGenerate(t)

	plain, err := EncodeKeyFile(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != plainFileLen || !bytes.HasPrefix(plain, []byte("BMKEY\x01\x00")) {
		t.Errorf("plain file %x: want %d bytes starting BMKEY 01 00", plain, plainFileLen)
	}
	if again := mustEncode(t, key, nil); !bytes.Equal(again, plain) {
		t.Error("plain encoding is not deterministic")
	}
	if empty := mustEncode(t, key, []byte{}); !bytes.Equal(empty, plain) {
		t.Error("empty passphrase does not give the plain encoding")
	}

	enc1 := mustEncode(t, key, testPass)
	enc2 := mustEncode(t, key, testPass)
	for i, enc := range [][]byte{enc1, enc2} {
		if len(enc) != encFileLen || !bytes.HasPrefix(enc, []byte{'B', 'M', 'K', 'E', 'Y', 1, 1, testLogN, scryptR, scryptP}) {
			t.Errorf("encrypted file %d %x: want %d bytes starting BMKEY 01 01 %02x %02x %02x", i, enc, encFileLen, testLogN, scryptR, scryptP)
		}
		if bytes.Contains(enc, key.Bytes()) {
			t.Errorf("encrypted file %d holds the secret in clear", i)
		}
	}
	if bytes.Equal(enc1[headerLen+3:], enc2[headerLen+3:]) {
		t.Error("two encryptions share salt, nonce and ciphertext")
	}
}

func TestDecodeKeyFilePassphrase(t *testing.T) {
	key := mustGenerate(t)
	plain := mustEncode(t, key, nil)
	enc := mustEncode(t, key, []byte("correct horse"))

	tests := []struct {
		name    string
		data    []byte
		pass    []byte
		wantErr error
	}{
		{"plain without passphrase", plain, nil, nil},
		{"encrypted right passphrase", enc, []byte("correct horse"), nil},
		{"encrypted wrong passphrase", enc, []byte("battery staple"), ErrWrongPassphrase},
		{"encrypted passphrase prefix", enc, []byte("correct hors"), ErrWrongPassphrase},
		{"encrypted passphrase extended", enc, []byte("correct horse "), ErrWrongPassphrase},
		{"encrypted passphrase case changed", enc, []byte("Correct horse"), ErrWrongPassphrase},
		{"encrypted nil passphrase", enc, nil, ErrPassphraseRequired},
		{"encrypted empty passphrase", enc, []byte{}, ErrPassphraseRequired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeNoPanic(t, tt.data, tt.pass)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("DecodeKeyFile: %v", err)
				}
				if !sameKey(got, key) {
					t.Fatalf("DecodeKeyFile = %s, want %s", got.DeviceID(), key.DeviceID())
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("DecodeKeyFile = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestSaveLoadEncryptedDefaultCost exercises the real Save/Load path with the
// production scrypt cost (two scrypt runs; wrong passphrases are covered at
// testLogN). It runs in parallel with the rest as it is the slowest test.
func TestSaveLoadEncryptedDefaultCost(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := KeyPath(dir)
	pass := []byte("s3cret passphrase")

	key, created, err := LoadOrCreate(path, pass)
	if err != nil || !created {
		t.Fatalf("LoadOrCreate = %v, created %v; want a new key", err, created)
	}
	onDisk := readFile(t, path)
	if len(onDisk) != encFileLen || onDisk[len(keyMagic)+1] != kindEncrypted || onDisk[headerLen] != defaultLogN {
		t.Fatalf("key file %x: want %d encrypted bytes with logN %d", onDisk, encFileLen, defaultLogN)
	}

	got, err := Load(path, pass)
	if err != nil || !sameKey(got, key) {
		t.Fatalf("Load = %v, %v; want %s", got, err, key.DeviceID())
	}
	k, created, err := LoadOrCreate(path, nil)
	if !errors.Is(err, ErrPassphraseRequired) || created || k != nil {
		t.Errorf("LoadOrCreate without passphrase = %v, %v, %v; want ErrPassphraseRequired", k, created, err)
	}
	if !bytes.Equal(readFile(t, path), onDisk) {
		t.Error("key file changed")
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Errorf("directory holds %q, want only the key file", names)
	}
}

func TestLoadPermissions(t *testing.T) {
	key := mustGenerate(t)
	plain := mustEncode(t, key, nil)
	tests := []struct {
		name    string
		mode    os.FileMode
		wantErr bool
	}{
		{"0600", 0o600, false},
		{"0400", 0o400, false},
		{"0700", 0o700, false},
		{"0640 group readable", 0o640, true},
		{"0604 world readable", 0o604, true},
		{"0644 group and world readable", 0o644, true},
		{"0620 group writable", 0o620, true},
		{"0602 world writable", 0o602, true},
		{"0610 group executable", 0o610, true},
		{"0660", 0o660, true},
		{"0666", 0o666, true},
		{"0777", 0o777, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := KeyPath(t.TempDir())
			writeKeyFile(t, path, plain, tt.mode)

			got, err := Load(path, nil)
			if !tt.wantErr {
				if err != nil || !sameKey(got, key) {
					t.Fatalf("Load = %v, %v; want the key", got, err)
				}
				return
			}
			if !errors.Is(err, ErrKeyPermissions) {
				t.Fatalf("Load = %v, want ErrKeyPermissions", err)
			}
			if !strings.Contains(err.Error(), "chmod 600") {
				t.Errorf("error %q does not tell the user how to fix it", err)
			}
			k, created, err := LoadOrCreate(path, nil)
			if !errors.Is(err, ErrKeyPermissions) || created || k != nil {
				t.Fatalf("LoadOrCreate = %v, %v, %v; want ErrKeyPermissions", k, created, err)
			}
			if !bytes.Equal(readFile(t, path), plain) {
				t.Error("key file content changed")
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != tt.mode {
				t.Errorf("mode changed to %04o", st.Mode().Perm())
			}
		})
	}
}

// corruptCase is a damaged key file and the errors it may produce.
type corruptCase struct {
	name string
	data []byte
	want []error // any of these
}

func corruptCases(t *testing.T) []corruptCase {
	key := mustGenerate(t)
	plain := mustEncode(t, key, nil)
	enc := mustEncode(t, key, testPass)
	corrupt := []error{ErrKeyCorrupt}
	corruptOrWrong := []error{ErrKeyCorrupt, ErrWrongPassphrase}

	set := func(b []byte, i int, v byte) []byte {
		b = bytes.Clone(b)
		b[i] = v
		return b
	}
	var cases []corruptCase
	add := func(name string, data []byte, want []error) {
		cases = append(cases, corruptCase{name, data, want})
	}
	for _, f := range []struct {
		kind string
		data []byte
	}{{"plain", plain}, {"encrypted", enc}} {
		add(f.kind+" wrong magic", set(f.data, 0, 'X'), corrupt)
		add(f.kind+" lowercase magic", append([]byte("bmkey"), f.data[len(keyMagic):]...), corrupt)
		add(f.kind+" version 0", set(f.data, len(keyMagic), 0), corrupt)
		add(f.kind+" version 2", set(f.data, len(keyMagic), 2), corrupt)
		add(f.kind+" version 255", set(f.data, len(keyMagic), 0xFF), corrupt)
		add(f.kind+" unknown kind 2", set(f.data, len(keyMagic)+1, 2), corrupt)
		add(f.kind+" unknown kind 255", set(f.data, len(keyMagic)+1, 0xFF), corrupt)
		add(f.kind+" extra trailing byte", append(bytes.Clone(f.data), 0), corrupt)
		add(f.kind+" extra trailing kilobyte", append(bytes.Clone(f.data), make([]byte, 1024)...), corrupt)
		add(f.kind+" doubled", append(bytes.Clone(f.data), f.data...), corrupt)
		add(f.kind+" header only", bytes.Clone(f.data[:headerLen]), corrupt)
		add(f.kind+" last byte dropped", bytes.Clone(f.data[:len(f.data)-1]), corrupt)
		for n := range len(f.data) {
			add(fmt.Sprintf("%s truncated to %d", f.kind, n), bytes.Clone(f.data[:n]), corrupt)
		}
		for i := range len(f.data) {
			want := corrupt
			if f.kind == "encrypted" && i >= headerLen {
				want = corruptOrWrong
			}
			add(fmt.Sprintf("%s byte %d inverted", f.kind, i), set(f.data, i, ^f.data[i]), want)
			add(fmt.Sprintf("%s byte %d incremented", f.kind, i), set(f.data, i, f.data[i]+1), want)
		}
	}
	add("empty", []byte{}, corrupt)
	add("nil", nil, corrupt)
	add("text", []byte("-----BEGIN PRIVATE KEY-----\n"), corrupt)
	add("plain valid checksum, zero key", plainFile(make([]byte, 32)), corrupt)
	add("plain valid checksum, key = N", plainFile(mustHex(t, curveOrderHex)), corrupt)
	add("plain valid checksum, key all ones", plainFile(bytes.Repeat([]byte{0xFF}, 32)), corrupt)
	add("plain checksum zeroed", append(bytes.Clone(plain[:plainFileLen-4]), 0, 0, 0, 0), corrupt)
	add("encrypted logN 0", set(enc, headerLen, 0), corrupt)
	add("encrypted logN above max", set(enc, headerLen, maxLogN+1), corrupt)
	add("encrypted logN 255", set(enc, headerLen, 0xFF), corrupt)
	add("encrypted r 0", set(enc, headerLen+1, 0), corrupt)
	add("encrypted p 0", set(enc, headerLen+2, 0), corrupt)
	add("encrypted r changed", set(enc, headerLen+1, scryptR+1), corrupt)
	add("encrypted p changed", set(enc, headerLen+2, scryptP+1), corrupt)
	add("encrypted r 255 (32 GiB scrypt)", set(enc, headerLen+1, 0xFF), corrupt)
	add("encrypted logN changed", set(enc, headerLen, testLogN+1), []error{ErrWrongPassphrase})
	add("encrypted sealed zero key", encryptedFile(t, make([]byte, 32), testPass), corrupt)
	add("encrypted sealed key = N", encryptedFile(t, mustHex(t, curveOrderHex), testPass), corrupt)
	return cases
}

func TestDecodeKeyFileCorrupt(t *testing.T) {
	cases := corruptCases(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if scryptTooCostly(tc.data) {
				t.Fatalf("test case asks for costly scrypt parameters")
			}
			k, err := decodeNoPanic(t, tc.data, testPass)
			if err == nil {
				t.Fatalf("DecodeKeyFile accepted a corrupt file: %s", k.DeviceID())
			}
			ok := false
			for _, w := range tc.want {
				ok = ok || errors.Is(err, w)
			}
			if !ok {
				t.Fatalf("DecodeKeyFile = %v, want one of %v", err, tc.want)
			}
		})
	}
}

// TestDecodeKeyFileBitFlips flips every single bit of a plain and an
// encrypted file. Bits of the encrypted file's logN byte are flipped only
// where the result stays cheap (see scryptBudget).
func TestDecodeKeyFileBitFlips(t *testing.T) {
	key := mustGenerate(t)
	for _, f := range []struct {
		kind string
		data []byte
	}{{"plain", mustEncode(t, key, nil)}, {"encrypted", mustEncode(t, key, testPass)}} {
		t.Run(f.kind, func(t *testing.T) {
			for bit := range len(f.data) * 8 {
				data := flipBit(f.data, bit)
				if scryptTooCostly(data) {
					continue
				}
				k, err := decodeNoPanic(t, data, testPass)
				switch {
				case err == nil:
					t.Errorf("bit %d: corrupt file accepted as %s", bit, k.DeviceID())
				case errors.Is(err, ErrKeyCorrupt):
				case f.kind == "encrypted" && bit/8 >= headerLen && errors.Is(err, ErrWrongPassphrase):
				default:
					t.Errorf("bit %d: DecodeKeyFile = %v", bit, err)
				}
			}
		})
	}
}

// TestLoadOrCreateCorruptNeverReplaces writes every corrupt case to disk and
// checks that LoadOrCreate fails and leaves the file as it was.
func TestLoadOrCreateCorruptNeverReplaces(t *testing.T) {
	cases := corruptCases(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := KeyPath(dir)
			writeKeyFile(t, path, tc.data, 0o600)
			for _, pass := range [][]byte{testPass, nil} {
				k, created, err := LoadOrCreate(path, pass)
				if err == nil || created || k != nil {
					t.Fatalf("LoadOrCreate(pass %q) = %v, %v, %v; want an error", pass, k, created, err)
				}
				if errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("LoadOrCreate(pass %q) = %v, reported as missing", pass, err)
				}
			}
			if got := readFile(t, path); !bytes.Equal(got, tc.data) {
				t.Fatalf("key file changed:\n got %x\nwant %x", got, tc.data)
			}
			if names := dirNames(t, dir); len(names) != 1 {
				t.Fatalf("directory holds %q, want only the key file", names)
			}
		})
	}
}

func TestLoadOddFiles(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, path string)
		wantErr error // nil: any error other than fs.ErrNotExist
	}{
		{"oversized file", func(t *testing.T, path string) {
			writeKeyFile(t, path, make([]byte, maxKeyFileSize+1), 0o600)
		}, ErrKeyCorrupt},
		{"empty file", func(t *testing.T, path string) {
			writeKeyFile(t, path, nil, 0o600)
		}, ErrKeyCorrupt},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, ErrNotRegularFile},
		// A directory's usual mode 0755 must not be blamed on permissions.
		{"directory 0755", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}, ErrNotRegularFile},
		{"symlink to a directory", func(t *testing.T, path string) {
			if err := os.Symlink(t.TempDir(), path); err != nil {
				t.Fatal(err)
			}
		}, ErrNotRegularFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := KeyPath(t.TempDir())
			tt.setup(t, path)
			before, _ := os.Lstat(path)
			_, err := Load(path, nil)
			if err == nil || errors.Is(err, fs.ErrNotExist) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("Load = %v, want %v", err, tt.wantErr)
			}
			if errors.Is(tt.wantErr, ErrNotRegularFile) && (!strings.Contains(err.Error(), "is a directory") || errors.Is(err, ErrKeyPermissions)) {
				t.Fatalf("Load = %v, want it to say the path is a directory", err)
			}
			k, created, err := LoadOrCreate(path, nil)
			if err == nil || created || k != nil {
				t.Fatalf("LoadOrCreate = %v, %v, %v; want an error", k, created, err)
			}
			after, _ := os.Lstat(path)
			if before.Mode() != after.Mode() || before.Size() != after.Size() || !before.ModTime().Equal(after.ModTime()) {
				t.Fatalf("path changed: %v %d -> %v %d", before.Mode(), before.Size(), after.Mode(), after.Size())
			}
		})
	}
}

func TestSaveRefusesToReplace(t *testing.T) {
	key := mustGenerate(t)
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
	}{
		{"existing key file", func(t *testing.T, path string) {
			if err := Save(path, mustGenerate(t), nil); err != nil {
				t.Fatal(err)
			}
		}},
		{"existing encrypted key file", func(t *testing.T, path string) {
			writeKeyFile(t, path, mustEncode(t, mustGenerate(t), testPass), 0o600)
		}},
		{"existing empty file", func(t *testing.T, path string) {
			writeKeyFile(t, path, nil, 0o600)
		}},
		{"existing corrupt file", func(t *testing.T, path string) {
			writeKeyFile(t, path, []byte("BMKEY garbage"), 0o600)
		}},
		{"existing directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
		{"dangling symlink", func(t *testing.T, path string) {
			if err := os.Symlink(filepath.Join(filepath.Dir(path), "target"), path); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := KeyPath(dir)
			tt.setup(t, path)
			before, _ := os.Lstat(path)
			var content []byte
			if before.Mode().IsRegular() {
				content = readFile(t, path)
			}
			namesBefore := dirNames(t, dir)

			err := Save(path, key, nil)
			if err == nil {
				t.Fatal("Save replaced an existing path")
			}
			if !errors.Is(err, fs.ErrExist) {
				t.Errorf("Save = %v, want fs.ErrExist", err)
			}
			after, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if before.Mode() != after.Mode() {
				t.Errorf("mode changed %v -> %v", before.Mode(), after.Mode())
			}
			if content != nil && !bytes.Equal(readFile(t, path), content) {
				t.Error("file content changed")
			}
			if got := dirNames(t, dir); strings.Join(got, ",") != strings.Join(namesBefore, ",") {
				t.Errorf("directory holds %q after Save, want %q (temporary file left behind or symlink followed)", got, namesBefore)
			}
		})
	}
}

func TestSaveThenLoad(t *testing.T) {
	key := mustGenerate(t)
	path := filepath.Join(t.TempDir(), "nested", "dir", KeyFileName)
	if err := Save(path, key, nil); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err := Load(path, nil)
	if err != nil || !sameKey(got, key) {
		t.Fatalf("Load = %v, %v; want %s", got, err, key.DeviceID())
	}
}

func FuzzDecodeKeyFile(f *testing.F) {
	key, err := PrivateKeyFromBytes(bytes.Repeat([]byte{0x42}, 32))
	if err != nil {
		f.Fatal(err)
	}
	plain, err := encodeKeyFile(key, nil, testLogN)
	if err != nil {
		f.Fatal(err)
	}
	enc, err := encodeKeyFile(key, testPass, testLogN)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(plain)
	f.Add(enc)
	f.Add([]byte{})
	f.Add([]byte(keyMagic))
	f.Add(plain[:headerLen])
	f.Add(enc[:len(enc)-1])
	f.Fuzz(func(t *testing.T, data []byte) {
		if scryptTooCostly(data) {
			return // see scryptBudget
		}
		k, err := decodeNoPanic(t, data, testPass)
		if err != nil {
			if !errors.Is(err, ErrKeyCorrupt) && !errors.Is(err, ErrWrongPassphrase) {
				t.Fatalf("DecodeKeyFile error %v wraps no keystore error", err)
			}
			return
		}
		switch kind := data[len(keyMagic)+1]; kind {
		case kindPlain:
			again, err := encodeKeyFile(k, nil, testLogN)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, data) {
				t.Fatalf("re-encoding a decoded plain file changed it:\n got %x\nwant %x", again, data)
			}
		case kindEncrypted:
			again := mustEncode(t, k, testPass)
			k2, err := DecodeKeyFile(again, testPass)
			if err != nil || !sameKey(k, k2) {
				t.Fatalf("re-encrypted key does not round-trip: %v", err)
			}
		default:
			t.Fatalf("decoded a file of unknown kind %d", kind)
		}
	})
}

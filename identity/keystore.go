package identity

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/scrypt"

	"github.com/bitmesh/bitmesh/internal/atomicfile"
)

// KeyFileName is the key file's name inside a node's data directory.
const KeyFileName = "identity.key"

// KeyPath returns the key file path inside dataDir.
func KeyPath(dataDir string) string { return filepath.Join(dataDir, KeyFileName) }

// Key file layout (all sizes fixed, so truncation is always detected):
//
//	magic "BMKEY" | version 0x01 | kind
//	kind 0x00 (plain):     key[32] | SHA-256(header||key)[:4]
//	kind 0x01 (encrypted): logN u8 | r u8 | p u8 | salt[16] | nonce[24] |
//	                       XChaCha20-Poly1305(scrypt(passphrase), key)[48]
//
// The encrypted form authenticates the whole header as associated data.
const (
	keyMagic       = "BMKEY"
	keyVersion     = 1
	kindPlain      = 0
	kindEncrypted  = 1
	headerLen      = len(keyMagic) + 2
	plainFileLen   = headerLen + PrivateKeySize + 4
	saltLen        = 16
	encParamsLen   = 3 + saltLen + chacha20poly1305.NonceSizeX
	encFileLen     = headerLen + encParamsLen + PrivateKeySize + chacha20poly1305.Overhead
	defaultLogN    = 15 // scrypt N = 32768: ~100 ms and 32 MiB on a small board
	scryptR        = 8
	scryptP        = 1
	maxLogN        = 20 // refuse files that would make us allocate > 1 GiB
	maxKeyFileSize = 4096
)

// LoadOrCreate loads the key at path, or, if no file exists there, generates
// a new key and writes it (encrypted when passphrase is non-empty). created
// reports whether a new key was written. An existing file that cannot be read
// is an error; it is never overwritten.
func LoadOrCreate(path string, passphrase []byte) (key *PrivateKey, created bool, err error) {
	key, err = Load(path, passphrase)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	key, err = Generate()
	if err != nil {
		return nil, false, err
	}
	if err := Save(path, key, passphrase); errors.Is(err, fs.ErrExist) {
		// Another process created the key first: use that one.
		key, err = Load(path, passphrase)
		return key, false, err
	} else if err != nil {
		return nil, false, err
	}
	return key, true, nil
}

// openRegular opens path for reading only if it is a regular file. The path
// is checked before opening, because opening a FIFO blocks until a writer
// comes, and the open file again, in case the path was swapped in between.
func openRegular(path string) (*os.File, fs.FileInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: %w", err)
	}
	if err := checkRegular(path, st); err != nil {
		return nil, nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: %w", err)
	}
	if st, err = f.Stat(); err == nil {
		err = checkRegular(path, st)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

func checkRegular(path string, st fs.FileInfo) error {
	switch {
	case st.Mode().IsRegular():
		return nil
	case st.IsDir():
		return fmt.Errorf("%w: %s is a directory", ErrNotRegularFile, path)
	default:
		return fmt.Errorf("%w: %s has type %v", ErrNotRegularFile, path, st.Mode().Type())
	}
}

// Load reads a key file. It refuses anything but a regular file
// (ErrNotRegularFile) and files readable or writable by group or others
// (ErrKeyPermissions), and reports truncation or corruption as
// ErrKeyCorrupt.
func Load(path string, passphrase []byte) (*PrivateKey, error) {
	f, st, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run chmod 600 %s", ErrKeyPermissions, path, perm, path)
	}
	if st.Size() > maxKeyFileSize {
		return nil, fmt.Errorf("%w: %s is %d bytes", ErrKeyCorrupt, path, st.Size())
	}
	// The limit holds even if the file grew since Stat.
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, maxKeyFileSize+1)); err != nil {
		return nil, fmt.Errorf("identity: reading %s: %w", path, err)
	}
	if buf.Len() > maxKeyFileSize {
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrKeyCorrupt, path, maxKeyFileSize)
	}
	k, err := DecodeKeyFile(buf.Bytes(), passphrase)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// Save writes key to path with mode 0600, creating parent directories with
// mode 0700. It never replaces an existing file: the file is written under a
// temporary name, synced, then linked into place, which fails if path exists.
func Save(path string, key *PrivateKey, passphrase []byte) error {
	data, err := EncodeKeyFile(key, passphrase)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	if err := atomicfile.Create(path, data, 0o600); errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("identity: refusing to replace key file: %w", err)
	} else if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	return nil
}

// EncodeKeyFile serialises a key in the key file format, encrypted when
// passphrase is non-empty.
func EncodeKeyFile(key *PrivateKey, passphrase []byte) ([]byte, error) {
	return encodeKeyFile(key, passphrase, defaultLogN)
}

func encodeKeyFile(key *PrivateKey, passphrase []byte, logN uint8) ([]byte, error) {
	secret := key.Bytes()
	if len(passphrase) == 0 {
		out := append([]byte(keyMagic), keyVersion, kindPlain)
		out = append(out, secret...)
		sum := sha256.Sum256(out)
		return append(out, sum[:4]...), nil
	}
	out := append([]byte(keyMagic), keyVersion, kindEncrypted, logN, scryptR, scryptP)
	var salt [saltLen]byte
	var nonce [chacha20poly1305.NonceSizeX]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return nil, fmt.Errorf("identity: reading randomness: %w", err)
	}
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("identity: reading randomness: %w", err)
	}
	out = append(out, salt[:]...)
	out = append(out, nonce[:]...)
	aead, err := keyFileAEAD(passphrase, salt[:], logN, scryptR, scryptP)
	if err != nil {
		return nil, err
	}
	return aead.Seal(out, nonce[:], secret, bytes.Clone(out)), nil // AEAD forbids dst overlapping the AD
}

// DecodeKeyFile parses the key file format. Errors wrap ErrKeyCorrupt,
// ErrPassphraseRequired or ErrWrongPassphrase.
func DecodeKeyFile(data []byte, passphrase []byte) (*PrivateKey, error) {
	if len(data) < headerLen || string(data[:len(keyMagic)]) != keyMagic {
		return nil, fmt.Errorf("%w: not a bitmesh key file", ErrKeyCorrupt)
	}
	if v := data[len(keyMagic)]; v != keyVersion {
		return nil, fmt.Errorf("%w: unknown version %d", ErrKeyCorrupt, v)
	}
	switch kind := data[len(keyMagic)+1]; kind {
	case kindPlain:
		if len(passphrase) > 0 {
			return nil, fmt.Errorf("%w: a passphrase was given but the key file is not encrypted", ErrKeyCorrupt)
		}
		if len(data) != plainFileLen {
			return nil, fmt.Errorf("%w: %d bytes, want %d (truncated?)", ErrKeyCorrupt, len(data), plainFileLen)
		}
		body := data[:headerLen+PrivateKeySize]
		sum := sha256.Sum256(body)
		if !bytes.Equal(sum[:4], data[len(body):]) {
			return nil, fmt.Errorf("%w: checksum mismatch", ErrKeyCorrupt)
		}
		k, err := PrivateKeyFromBytes(body[headerLen:])
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrKeyCorrupt, err)
		}
		if !bytes.Equal(k.Bytes(), body[headerLen:]) {
			return nil, fmt.Errorf("%w: key not normalised to even Y", ErrKeyCorrupt)
		}
		return k, nil
	case kindEncrypted:
		if len(data) != encFileLen {
			return nil, fmt.Errorf("%w: %d bytes, want %d (truncated?)", ErrKeyCorrupt, len(data), encFileLen)
		}
		if len(passphrase) == 0 {
			return nil, ErrPassphraseRequired
		}
		p := data[headerLen:]
		logN, r, pp := p[0], p[1], p[2]
		// Only r=8, p=1 are ever written; anything else would let a crafted
		// header demand gigabytes (scrypt allocates 128·r·N bytes).
		if logN < 1 || logN > maxLogN || r != scryptR || pp != scryptP {
			return nil, fmt.Errorf("%w: bad scrypt parameters", ErrKeyCorrupt)
		}
		salt := p[3 : 3+saltLen]
		nonce := p[3+saltLen : encParamsLen]
		aead, err := keyFileAEAD(passphrase, salt, logN, r, pp)
		if err != nil {
			return nil, err
		}
		ad := data[:headerLen+encParamsLen]
		secret, err := aead.Open(nil, nonce, data[len(ad):], ad)
		if err != nil {
			return nil, ErrWrongPassphrase
		}
		k, err := PrivateKeyFromBytes(secret)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrKeyCorrupt, err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("%w: unknown kind %d", ErrKeyCorrupt, kind)
	}
}

func keyFileAEAD(passphrase, salt []byte, logN, r, p uint8) (cipher.AEAD, error) {
	kek, err := scrypt.Key(passphrase, salt, 1<<logN, int(r), int(p), chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("identity: deriving key: %w", err)
	}
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return aead, nil
}

package identity

import "errors"

var (
	// ErrKeyPermissions is returned when a key file is readable or writable by
	// group or others.
	ErrKeyPermissions = errors.New("identity: key file permissions too open (want 0600)")
	// ErrKeyCorrupt is returned when a key file is truncated, has a bad
	// checksum or an unknown format. The file is left untouched.
	ErrKeyCorrupt = errors.New("identity: key file corrupt")
	// ErrPassphraseRequired is returned when a key file is encrypted and no
	// passphrase was given.
	ErrPassphraseRequired = errors.New("identity: key file is encrypted: passphrase required")
	// ErrWrongPassphrase is returned when decryption fails, which means the
	// passphrase is wrong or the ciphertext was altered.
	ErrWrongPassphrase = errors.New("identity: wrong passphrase or tampered key file")
	// ErrBadSignature is returned when a signature does not verify.
	ErrBadSignature = errors.New("identity: invalid signature")
	// ErrBadDeviceID is returned for a malformed device ID text or key.
	ErrBadDeviceID = errors.New("identity: invalid device ID")
	// ErrNotRegularFile is returned when a key or certificate path names a
	// directory, device, FIFO or socket instead of a regular file.
	ErrNotRegularFile = errors.New("identity: not a regular file")
)

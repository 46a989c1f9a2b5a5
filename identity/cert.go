package identity

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
	"unicode/utf8"
)

// Device certificates and revocations: the credentials of a permissioned
// mesh, a tiny X.509 for device keys. An operator key signs, in its own
// domain, that a device key may take part in a network with some roles for a
// time window; it may later revoke one certificate or every certificate of a
// device. Both objects have one canonical binary encoding (PROTOCOL.md §16)
// and the signature covers every byte before it.

// DomainRevocation is the signing domain of revocations. It is separate from
// DomainCertificate so that a certificate signature never verifies as a
// revocation, nor the other way round.
const DomainRevocation Domain = "bitmesh/revocation"

// Limits of the certificate and revocation encodings.
const (
	// MaxCertificateSize is the largest certificate encoding: a 64-byte
	// network name and eight 32-byte roles.
	MaxCertificateSize = certFixedSize + MaxCertNetworkLen + MaxRoles*(1+MaxRoleLen)
	// MaxRevocationSize is the largest revocation encoding: a 64-byte
	// network name and a 128-byte reason.
	MaxRevocationSize = revFixedSize + MaxCertNetworkLen + MaxRevocationReasonLen
	// MaxCertNetworkLen bounds the network name (1..64 bytes of printable
	// ASCII, 0x21..0x7e).
	MaxCertNetworkLen = 64
	// MaxRoles bounds the roles of one certificate.
	MaxRoles = 8
	// MaxRoleLen bounds a role name (1..32 bytes of [a-z0-9-]).
	MaxRoleLen = 32
	// MaxRevocationReasonLen bounds a revocation's reason (UTF-8 text).
	MaxRevocationReasonLen = 128
	// MaxRevocations bounds a RevocationList. A full list refuses new
	// revocations rather than evicting old ones: forgetting a revocation
	// would readmit a device.
	MaxRevocations = 65536
)

const (
	certMagic   = "BMCRT"
	revMagic    = "BMREV"
	credVersion = 1
	// certFixedSize counts every certificate byte but the network name and
	// the roles: header 6, network length 1, device 32, operator 32, role
	// count 1, not_before 8, not_after 8, serial 8, signature 64.
	certFixedSize = 6 + 1 + 32 + 32 + 1 + 8 + 8 + 8 + SignatureSize
	// revFixedSize: header 6, network length 1, operator 32, device 32,
	// serial 8, time 8, reason length 1, signature 64.
	revFixedSize = 6 + 1 + 32 + 32 + 8 + 8 + 1 + SignatureSize
	// maxCredUnix is 9999-12-31T23:59:59Z, X.509's "no well-defined
	// expiration". Times lie in [0, maxCredUnix], so every one is a plain
	// time.Time whose comparisons cannot overflow.
	maxCredUnix int64 = 253402300799
)

var (
	// ErrCertMalformed is wrapped by every *CertError: a certificate or
	// revocation that does not decode, or whose fields cannot be encoded
	// canonically.
	ErrCertMalformed = errors.New("identity: malformed certificate or revocation")
	// ErrCertExpired is returned when now is at or after NotAfter.
	ErrCertExpired = errors.New("identity: certificate expired")
	// ErrCertNotYetValid is returned when now is before NotBefore.
	ErrCertNotYetValid = errors.New("identity: certificate not yet valid")
	// ErrCertUntrusted is returned when a certificate or revocation was
	// issued by a key that is not a trusted operator.
	ErrCertUntrusted = errors.New("identity: issuer is not a trusted operator")
	// ErrCertWrongNetwork is returned when a certificate or revocation was
	// issued for another network.
	ErrCertWrongNetwork = errors.New("identity: certificate or revocation is for another network")
	// ErrCertRevoked is returned by RevocationList.Check for a certificate
	// that a held revocation covers.
	ErrCertRevoked = errors.New("identity: certificate revoked")
	// ErrCertBadSignature is returned when the operator's signature does not
	// verify. Such errors also wrap ErrBadSignature.
	ErrCertBadSignature = errors.New("identity: certificate or revocation signature invalid")
	// ErrRevocationListFull is returned by RevocationList.Add when the list
	// holds MaxRevocations revocations.
	ErrRevocationListFull = errors.New("identity: revocation list full")
)

// CertError reports a malformed certificate or revocation: which field broke
// which rule. It wraps ErrCertMalformed.
type CertError struct {
	Field  string // the field as named in PROTOCOL.md §16, e.g. "network", "roles"
	Reason string
}

func (e *CertError) Error() string {
	return ErrCertMalformed.Error() + ": " + e.Field + ": " + e.Reason
}

// Unwrap returns ErrCertMalformed.
func (e *CertError) Unwrap() error { return ErrCertMalformed }

func malformed(field, format string, args ...any) error {
	return &CertError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Certificate says that Operator admits Device to Network with Roles from
// NotBefore (inclusive) to NotAfter (exclusive). Times have one-second
// precision; Encode truncates anything finer.
type Certificate struct {
	Network   string // network it is valid in: 1..64 bytes of printable ASCII
	Device    DeviceID
	Operator  DeviceID // the issuer; set by IssueCertificate
	Roles     []string // at most 8, each 1..32 bytes of [a-z0-9-], sorted, unique
	NotBefore time.Time
	NotAfter  time.Time // after NotBefore; both in 1970..9999
	Serial    uint64    // nonzero: 0 means "every certificate" in a Revocation
	Signature Signature
}

// IssueCertificate fills in c.Operator from op, sorts c.Roles, truncates the
// times to seconds and signs the certificate in DomainCertificate. It fails
// with a *CertError when a field breaks a rule of the encoding or c.Device is
// not a valid public key. c.Roles is not modified.
func IssueCertificate(op *PrivateKey, c Certificate) (Certificate, error) {
	if op == nil {
		panic("identity: IssueCertificate with a nil operator key")
	}
	c.Operator = op.DeviceID()
	c.Roles = slices.Clone(c.Roles)
	slices.Sort(c.Roles)
	if len(c.Roles) == 0 {
		c.Roles = nil // as decoded
	}
	c.NotBefore = unixTime(c.NotBefore.Unix())
	c.NotAfter = unixTime(c.NotAfter.Unix())
	c.Signature = Signature{}
	if _, err := c.Device.ParsePublicKey(); err != nil {
		return Certificate{}, malformed("device", "%v", err)
	}
	unsigned, err := c.appendUnsigned(nil)
	if err != nil {
		return Certificate{}, err
	}
	if c.Signature, err = op.Sign(DomainCertificate, unsigned); err != nil {
		return Certificate{}, err
	}
	return c, nil
}

// Encode returns the canonical encoding. It fails with a *CertError when a
// field breaks a rule of the encoding; it does not check the signature.
func (c Certificate) Encode() ([]byte, error) {
	b, err := c.appendUnsigned(make([]byte, 0, c.encodedSize()))
	if err != nil {
		return nil, err
	}
	return append(b, c.Signature[:]...), nil
}

func (c Certificate) encodedSize() int {
	n := certFixedSize + len(c.Network)
	for _, r := range c.Roles {
		n += 1 + len(r)
	}
	return n
}

// appendUnsigned appends the encoding without the signature: the bytes the
// operator signs.
func (c Certificate) appendUnsigned(b []byte) ([]byte, error) {
	if err := checkNetwork(c.Network); err != nil {
		return nil, err
	}
	if err := checkRoles(c.Roles); err != nil {
		return nil, err
	}
	nb, na := c.NotBefore.Unix(), c.NotAfter.Unix()
	if err := checkTime("not_before", nb); err != nil {
		return nil, err
	}
	if err := checkTime("not_after", na); err != nil {
		return nil, err
	}
	if na <= nb {
		return nil, malformed("not_after", "%d is not after not_before %d", na, nb)
	}
	if c.Serial == 0 {
		return nil, malformed("serial", "0 is reserved (a revocation of serial 0 covers every certificate)")
	}
	b = append(b, certMagic...)
	b = append(b, credVersion, byte(len(c.Network)))
	b = append(b, c.Network...)
	b = append(b, c.Device[:]...)
	b = append(b, c.Operator[:]...)
	b = append(b, byte(len(c.Roles)))
	for _, r := range c.Roles {
		b = append(b, byte(len(r)))
		b = append(b, r...)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(nb))
	b = binary.BigEndian.AppendUint64(b, uint64(na))
	return binary.BigEndian.AppendUint64(b, c.Serial), nil
}

// ReadCertificateFile reads an encoded certificate, such as a node's
// DATA/device.cert, without decoding it. It refuses anything but a regular
// file (ErrNotRegularFile) and a file over MaxCertificateSize (a
// *CertError), and never reads more than MaxCertificateSize+1 bytes, so a
// huge file costs no memory. A missing file wraps fs.ErrNotExist.
func ReadCertificateFile(path string) ([]byte, error) {
	f, st, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st.Size() > MaxCertificateSize {
		return nil, fmt.Errorf("%s: %w", path, malformed("size", "%d bytes, max %d", st.Size(), MaxCertificateSize))
	}
	// Stat can be stale (the file may grow): the limit decides.
	b, err := io.ReadAll(io.LimitReader(f, MaxCertificateSize+1))
	if err != nil {
		return nil, fmt.Errorf("identity: reading %s: %w", path, err)
	}
	if len(b) > MaxCertificateSize {
		return nil, fmt.Errorf("%s: %w", path, malformed("size", "over %d bytes", MaxCertificateSize))
	}
	return b, nil
}

// DecodeCertificate parses the canonical encoding. Anything else (wrong
// magic or version, truncation, trailing bytes, a bad length, unsorted or
// duplicate roles, out-of-range times) is a *CertError. It does not verify
// the signature: see Verify.
func DecodeCertificate(b []byte) (Certificate, error) {
	if len(b) > MaxCertificateSize {
		return Certificate{}, malformed("size", "%d bytes, max %d", len(b), MaxCertificateSize)
	}
	d := decoder{b: b}
	var c Certificate
	var err error
	if err = d.header(certMagic); err != nil {
		return Certificate{}, err
	}
	if c.Network, err = d.network(); err != nil {
		return Certificate{}, err
	}
	if err = d.key("device", &c.Device); err != nil {
		return Certificate{}, err
	}
	if err = d.key("operator", &c.Operator); err != nil {
		return Certificate{}, err
	}
	n, err := d.u8("roles")
	if err != nil {
		return Certificate{}, err
	}
	if n > MaxRoles {
		return Certificate{}, malformed("roles", "%d roles, max %d", n, MaxRoles)
	}
	if n > 0 {
		c.Roles = make([]string, 0, n)
	}
	for range n {
		l, err := d.u8("role")
		if err != nil {
			return Certificate{}, err
		}
		p, err := d.take(int(l), "role")
		if err != nil {
			return Certificate{}, err
		}
		c.Roles = append(c.Roles, string(p))
	}
	if err := checkRoles(c.Roles); err != nil {
		return Certificate{}, err
	}
	if c.NotBefore, err = d.time("not_before"); err != nil {
		return Certificate{}, err
	}
	if c.NotAfter, err = d.time("not_after"); err != nil {
		return Certificate{}, err
	}
	if !c.NotAfter.After(c.NotBefore) {
		return Certificate{}, malformed("not_after", "%d is not after not_before %d", c.NotAfter.Unix(), c.NotBefore.Unix())
	}
	if c.Serial, err = d.u64("serial"); err != nil {
		return Certificate{}, err
	}
	if c.Serial == 0 {
		return Certificate{}, malformed("serial", "0 is reserved")
	}
	if err := d.signature(&c.Signature); err != nil {
		return Certificate{}, err
	}
	return c, nil
}

// Verify checks that c is valid at now in network and issued by one of the
// trusted operators. Cheap checks come first and the signature last, so a
// flood of foreign or stale certificates costs no curve arithmetic. The
// errors wrap ErrCertWrongNetwork, ErrCertUntrusted, ErrCertNotYetValid,
// ErrCertExpired, ErrCertMalformed or ErrCertBadSignature, in that order of
// checking. Revocation is checked separately (RevocationList).
func (c Certificate) Verify(now time.Time, network string, trusted []DeviceID) error {
	if c.Network != network {
		return fmt.Errorf("%w: issued for %q, not %q", ErrCertWrongNetwork, c.Network, network)
	}
	if !slices.Contains(trusted, c.Operator) {
		return fmt.Errorf("%w: %s", ErrCertUntrusted, c.Operator)
	}
	t := now.Unix() // floor: exact for comparisons with whole seconds
	if t < c.NotBefore.Unix() {
		return fmt.Errorf("%w: valid from %s, now %s", ErrCertNotYetValid, fmtUnix(c.NotBefore.Unix()), fmtUnix(t))
	}
	if t >= c.NotAfter.Unix() {
		return fmt.Errorf("%w: valid until %s, now %s", ErrCertExpired, fmtUnix(c.NotAfter.Unix()), fmtUnix(t))
	}
	unsigned, err := c.appendUnsigned(make([]byte, 0, c.encodedSize()))
	if err != nil {
		return err
	}
	if err := c.Operator.Verify(DomainCertificate, unsigned, c.Signature); err != nil {
		return fmt.Errorf("%w: %w", ErrCertBadSignature, err)
	}
	return nil
}

// HasRole reports whether c grants role r.
func (c Certificate) HasRole(r string) bool { return slices.Contains(c.Roles, r) }

// ID names the certificate in logs: DomainCertificate.Hash of the full
// encoding, signature included. It is the zero array for a certificate that
// cannot be encoded.
func (c Certificate) ID() [32]byte {
	b, err := c.Encode()
	if err != nil {
		return [32]byte{}
	}
	return DomainCertificate.Hash(b)
}

func checkNetwork(s string) error {
	if len(s) == 0 || len(s) > MaxCertNetworkLen {
		return malformed("network", "%d bytes, want 1..%d", len(s), MaxCertNetworkLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return malformed("network", "byte %#02x at %d is not printable ASCII", s[i], i)
		}
	}
	return nil
}

// checkRoles checks the canonical form: bounded count, valid names, strictly
// ascending byte order (sorted and unique).
func checkRoles(roles []string) error {
	if len(roles) > MaxRoles {
		return malformed("roles", "%d roles, max %d", len(roles), MaxRoles)
	}
	for i, r := range roles {
		if len(r) == 0 || len(r) > MaxRoleLen {
			return malformed("role", "%d bytes, want 1..%d", len(r), MaxRoleLen)
		}
		for j := 0; j < len(r); j++ {
			if b := r[j]; (b < 'a' || b > 'z') && (b < '0' || b > '9') && b != '-' {
				return malformed("role", "%q: byte %#02x is not in [a-z0-9-]", r, b)
			}
		}
		if i > 0 && roles[i-1] >= r {
			return malformed("roles", "%q after %q: not sorted and unique", r, roles[i-1])
		}
	}
	return nil
}

func checkTime(field string, t int64) error {
	if t < 0 || t > maxCredUnix {
		return malformed(field, "%d is outside 0..%d (1970 to 9999)", t, maxCredUnix)
	}
	return nil
}

func checkReason(s string) error {
	if len(s) > MaxRevocationReasonLen {
		return malformed("reason", "%d bytes, max %d", len(s), MaxRevocationReasonLen)
	}
	if !utf8.ValidString(s) {
		return malformed("reason", "not valid UTF-8")
	}
	return nil
}

func unixTime(t int64) time.Time { return time.Unix(t, 0).UTC() }

func fmtUnix(t int64) string { return unixTime(t).Format(time.RFC3339) }

// decoder reads fixed-width and length-prefixed fields, checking every
// length against what is left before slicing, so truncation at any byte is a
// *CertError naming the field being read.
type decoder struct {
	b   []byte
	off int
}

func (d *decoder) take(n int, field string) ([]byte, error) {
	if left := len(d.b) - d.off; n > left {
		return nil, malformed(field, "truncated at byte %d: %d more bytes needed, %d left", d.off, n, left)
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p, nil
}

func (d *decoder) u8(field string) (byte, error) {
	p, err := d.take(1, field)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

func (d *decoder) u64(field string) (uint64, error) {
	p, err := d.take(8, field)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(p), nil
}

func (d *decoder) header(magic string) error {
	p, err := d.take(len(magic), "magic")
	if err != nil {
		return err
	}
	if string(p) != magic {
		return malformed("magic", "%q, want %q", p, magic)
	}
	v, err := d.u8("version")
	if err != nil {
		return err
	}
	if v != credVersion {
		return malformed("version", "%d, want %d", v, credVersion)
	}
	return nil
}

func (d *decoder) network() (string, error) {
	n, err := d.u8("network")
	if err != nil {
		return "", err
	}
	if n == 0 || n > MaxCertNetworkLen {
		return "", malformed("network", "%d bytes, want 1..%d", n, MaxCertNetworkLen)
	}
	p, err := d.take(int(n), "network")
	if err != nil {
		return "", err
	}
	s := string(p)
	return s, checkNetwork(s)
}

func (d *decoder) key(field string, id *DeviceID) error {
	p, err := d.take(len(id), field)
	if err != nil {
		return err
	}
	copy(id[:], p)
	return nil
}

func (d *decoder) time(field string) (time.Time, error) {
	v, err := d.u64(field)
	if err != nil {
		return time.Time{}, err
	}
	t := int64(v)
	if err := checkTime(field, t); err != nil {
		return time.Time{}, err
	}
	return unixTime(t), nil
}

// signature reads the final field and rejects anything after it.
func (d *decoder) signature(sig *Signature) error {
	p, err := d.take(SignatureSize, "signature")
	if err != nil {
		return err
	}
	copy(sig[:], p)
	if left := len(d.b) - d.off; left != 0 {
		return malformed("size", "%d trailing bytes", left)
	}
	return nil
}

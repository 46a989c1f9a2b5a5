package identity

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Revocation withdraws one certificate (Serial) or, with Serial 0, every
// certificate that Operator issued to Device in Network, past and future. It
// does not expire: a device whose key is revoked with Serial 0 needs a new
// key to be readmitted.
type Revocation struct {
	Network   string   // 1..64 bytes of printable ASCII
	Operator  DeviceID // the issuer; set by IssueRevocation
	Device    DeviceID
	Serial    uint64    // 0 = every certificate of Device
	Time      time.Time // when it was issued, for audit; 1970..9999, seconds
	Reason    string    // 0..128 bytes of UTF-8, for operators
	Signature Signature
}

// IssueRevocation fills in r.Operator from op, truncates r.Time to seconds
// and signs the revocation in DomainRevocation. It fails with a *CertError
// when a field breaks a rule of the encoding.
func IssueRevocation(op *PrivateKey, r Revocation) (Revocation, error) {
	if op == nil {
		panic("identity: IssueRevocation with a nil operator key")
	}
	r.Operator = op.DeviceID()
	r.Time = unixTime(r.Time.Unix())
	r.Signature = Signature{}
	unsigned, err := r.appendUnsigned(nil)
	if err != nil {
		return Revocation{}, err
	}
	if r.Signature, err = op.Sign(DomainRevocation, unsigned); err != nil {
		return Revocation{}, err
	}
	return r, nil
}

// Encode returns the canonical encoding. It fails with a *CertError when a
// field breaks a rule of the encoding; it does not check the signature.
func (r Revocation) Encode() ([]byte, error) {
	b, err := r.appendUnsigned(make([]byte, 0, revFixedSize+len(r.Network)+len(r.Reason)))
	if err != nil {
		return nil, err
	}
	return append(b, r.Signature[:]...), nil
}

func (r Revocation) appendUnsigned(b []byte) ([]byte, error) {
	if err := checkNetwork(r.Network); err != nil {
		return nil, err
	}
	t := r.Time.Unix()
	if err := checkTime("time", t); err != nil {
		return nil, err
	}
	if err := checkReason(r.Reason); err != nil {
		return nil, err
	}
	b = append(b, revMagic...)
	b = append(b, credVersion, byte(len(r.Network)))
	b = append(b, r.Network...)
	b = append(b, r.Operator[:]...)
	b = append(b, r.Device[:]...)
	b = binary.BigEndian.AppendUint64(b, r.Serial)
	b = binary.BigEndian.AppendUint64(b, uint64(t))
	b = append(b, byte(len(r.Reason)))
	return append(b, r.Reason...), nil
}

// DecodeRevocation parses the canonical encoding with the same rigour as
// DecodeCertificate; failures are *CertError. It does not verify the
// signature.
func DecodeRevocation(b []byte) (Revocation, error) {
	if len(b) > MaxRevocationSize {
		return Revocation{}, malformed("size", "%d bytes, max %d", len(b), MaxRevocationSize)
	}
	d := decoder{b: b}
	var r Revocation
	var err error
	if err = d.header(revMagic); err != nil {
		return Revocation{}, err
	}
	if r.Network, err = d.network(); err != nil {
		return Revocation{}, err
	}
	if err = d.key("operator", &r.Operator); err != nil {
		return Revocation{}, err
	}
	if err = d.key("device", &r.Device); err != nil {
		return Revocation{}, err
	}
	if r.Serial, err = d.u64("serial"); err != nil {
		return Revocation{}, err
	}
	if r.Time, err = d.time("time"); err != nil {
		return Revocation{}, err
	}
	n, err := d.u8("reason")
	if err != nil {
		return Revocation{}, err
	}
	if n > MaxRevocationReasonLen {
		return Revocation{}, malformed("reason", "%d bytes, max %d", n, MaxRevocationReasonLen)
	}
	p, err := d.take(int(n), "reason")
	if err != nil {
		return Revocation{}, err
	}
	r.Reason = string(p)
	if err := checkReason(r.Reason); err != nil {
		return Revocation{}, err
	}
	if err := d.signature(&r.Signature); err != nil {
		return Revocation{}, err
	}
	return r, nil
}

// Verify checks that r was issued for network by one of the trusted
// operators: network and issuer first, the signature last. Revocations have
// no validity window; they take effect on receipt.
func (r Revocation) Verify(network string, trusted []DeviceID) error {
	if r.Network != network {
		return fmt.Errorf("%w: issued for %q, not %q", ErrCertWrongNetwork, r.Network, network)
	}
	if !slices.Contains(trusted, r.Operator) {
		return fmt.Errorf("%w: %s", ErrCertUntrusted, r.Operator)
	}
	unsigned, err := r.appendUnsigned(make([]byte, 0, revFixedSize+len(r.Network)+len(r.Reason)))
	if err != nil {
		return err
	}
	if err := r.Operator.Verify(DomainRevocation, unsigned, r.Signature); err != nil {
		return fmt.Errorf("%w: %w", ErrCertBadSignature, err)
	}
	return nil
}

// Covers reports whether r revokes c: same network, operator and device, and
// the same serial or r.Serial 0. An operator can only revoke what it issued.
func (r Revocation) Covers(c Certificate) bool {
	return r.Network == c.Network && r.Operator == c.Operator && r.Device == c.Device &&
		(r.Serial == 0 || r.Serial == c.Serial)
}

// RevocationList holds verified revocations, at most MaxRevocations. The zero
// value is an empty list. Safe for concurrent access.
type RevocationList struct {
	mu      sync.RWMutex                         // guards the fields below
	subject map[revSubject]map[uint64]Revocation // by serial, 0 = all
	whole   map[DeviceID]bool                    // devices with a serial-0 revocation
	n       int                                  // revocations held
}

// revSubject is what a revocation applies to, bar the serial.
type revSubject struct {
	network          string
	operator, device DeviceID
}

// Add stores r, which the caller has verified (Revocation.Verify). Adding a
// revocation of a subject and serial already held does nothing. When the
// list is full it returns an error wrapping ErrRevocationListFull and keeps
// what it has.
func (l *RevocationList) Add(r Revocation) error {
	k := revSubject{r.Network, r.Operator, r.Device}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.subject[k][r.Serial]; ok {
		return nil
	}
	if l.n >= MaxRevocations {
		return fmt.Errorf("%w: %d revocations held", ErrRevocationListFull, l.n)
	}
	if l.subject == nil {
		l.subject = make(map[revSubject]map[uint64]Revocation)
	}
	m := l.subject[k]
	if m == nil {
		m = make(map[uint64]Revocation, 1)
		l.subject[k] = m
	}
	m[r.Serial] = r
	l.n++
	if r.Serial == 0 {
		if l.whole == nil {
			l.whole = make(map[DeviceID]bool)
		}
		l.whole[r.Device] = true
	}
	return nil
}

// RevokesDevice reports whether a held revocation withdraws every
// certificate of d (serial 0), so d can be refused before it shows one.
func (l *RevocationList) RevokesDevice(d DeviceID) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.whole[d]
}

// Revoked reports whether a held revocation covers c.
func (l *RevocationList) Revoked(c Certificate) bool {
	_, ok := l.find(c)
	return ok
}

// Check returns nil, or an error wrapping ErrCertRevoked that names the
// revocation covering c.
func (l *RevocationList) Check(c Certificate) error {
	r, ok := l.find(c)
	if !ok {
		return nil
	}
	return fmt.Errorf("%w: serial %d of %s by %s (revocation of serial %d at %s: %q)",
		ErrCertRevoked, c.Serial, c.Device, c.Operator, r.Serial, fmtUnix(r.Time.Unix()), r.Reason)
}

func (l *RevocationList) find(c Certificate) (Revocation, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	m := l.subject[revSubject{c.Network, c.Operator, c.Device}]
	if r, ok := m[0]; ok {
		return r, true
	}
	r, ok := m[c.Serial]
	return r, ok
}

// Len returns the number of revocations held.
func (l *RevocationList) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.n
}

// All returns a copy of the revocations held, ordered by network, operator,
// device and serial, for gossiping to a new peer.
func (l *RevocationList) All() []Revocation {
	l.mu.RLock()
	out := make([]Revocation, 0, l.n)
	for _, m := range l.subject {
		for _, r := range m {
			out = append(out, r)
		}
	}
	l.mu.RUnlock()
	slices.SortFunc(out, func(a, b Revocation) int {
		return cmp.Or(
			strings.Compare(a.Network, b.Network),
			bytes.Compare(a.Operator[:], b.Operator[:]),
			bytes.Compare(a.Device[:], b.Device[:]),
			cmp.Compare(a.Serial, b.Serial),
		)
	})
	return out
}

package identity_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/identity"
)

const certTestNetwork = "greenhouse"

// certT0 is the NotBefore of the test certificates: 2026-01-01T00:00:00Z.
var certT0 = time.Unix(1767225600, 0).UTC()

func certKey(t testing.TB, fill byte) *identity.PrivateKey {
	t.Helper()
	k, err := identity.PrivateKeyFromBytes(bytes.Repeat([]byte{fill}, identity.PrivateKeySize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// certFixture is an operator, a device, a stranger, and a certificate the
// operator issued to the device for one day from certT0.
type certFixture struct {
	op, dev, other *identity.PrivateKey
	cert           identity.Certificate
	trusted        []identity.DeviceID
}

func newCertFixture(t testing.TB) certFixture {
	t.Helper()
	f := certFixture{op: certKey(t, 0x01), dev: certKey(t, 0x02), other: certKey(t, 0x03)}
	f.trusted = []identity.DeviceID{f.other.DeviceID(), f.op.DeviceID()}
	f.cert = mustIssueCert(t, f.op, identity.Certificate{
		Network:   certTestNetwork,
		Device:    f.dev.DeviceID(),
		Roles:     []string{"witness", "publish", "gateway"},
		NotBefore: certT0,
		NotAfter:  certT0.Add(24 * time.Hour),
		Serial:    7,
	})
	return f
}

func mustIssueCert(t testing.TB, op *identity.PrivateKey, c identity.Certificate) identity.Certificate {
	t.Helper()
	c, err := identity.IssueCertificate(op, c)
	if err != nil {
		t.Fatalf("IssueCertificate: %v", err)
	}
	return c
}

func mustEncodeCert(t testing.TB, c identity.Certificate) []byte {
	t.Helper()
	b, err := c.Encode()
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return b
}

func mustIssueRev(t testing.TB, op *identity.PrivateKey, r identity.Revocation) identity.Revocation {
	t.Helper()
	r, err := identity.IssueRevocation(op, r)
	if err != nil {
		t.Fatalf("IssueRevocation: %v", err)
	}
	return r
}

// wantMalformed checks that err is a *CertError wrapping ErrCertMalformed,
// about field when field is not empty.
func wantMalformed(t *testing.T, err error, field string) {
	t.Helper()
	if !errors.Is(err, identity.ErrCertMalformed) {
		t.Fatalf("error %v, want ErrCertMalformed", err)
	}
	var ce *identity.CertError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *CertError", err, err)
	}
	if field != "" && ce.Field != field {
		t.Fatalf("CertError.Field = %q (%v), want %q", ce.Field, err, field)
	}
}

func TestCertificateRoundTrip(t *testing.T) {
	f := newCertFixture(t)
	roles := []string{"witness", "publish"}
	c := mustIssueCert(t, f.op, identity.Certificate{
		Network:   certTestNetwork,
		Device:    f.dev.DeviceID(),
		Operator:  f.other.DeviceID(), // overwritten: the issuer is op
		Roles:     roles,
		NotBefore: certT0.Add(999 * time.Millisecond).In(time.FixedZone("CET", 3600)),
		NotAfter:  certT0.Add(time.Hour),
		Serial:    1 << 63,
	})
	if c.Operator != f.op.DeviceID() {
		t.Errorf("Operator = %s, want the issuer %s", c.Operator, f.op.DeviceID())
	}
	if want := []string{"publish", "witness"}; !reflect.DeepEqual(c.Roles, want) {
		t.Errorf("Roles = %q, want sorted %q", c.Roles, want)
	}
	if roles[0] != "witness" {
		t.Errorf("IssueCertificate sorted the caller's slice: %q", roles)
	}
	if !c.NotBefore.Equal(certT0) || c.NotBefore.Location() != time.UTC {
		t.Errorf("NotBefore = %v, want %v (whole seconds, UTC)", c.NotBefore, certT0)
	}
	b := mustEncodeCert(t, c)
	if want := 160 + len(certTestNetwork) + 1 + len("publish") + 1 + len("witness"); len(b) != want {
		t.Errorf("encoding is %d bytes, want %d", len(b), want)
	}
	got, err := identity.DecodeCertificate(b)
	if err != nil {
		t.Fatalf("DecodeCertificate: %v", err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("decoded\n%+v\nwant\n%+v", got, c)
	}
	if b2 := mustEncodeCert(t, got); !bytes.Equal(b2, b) {
		t.Errorf("re-encoding differs:\n%x\n%x", b2, b)
	}
	if err := got.Verify(certT0, certTestNetwork, f.trusted); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if !got.HasRole("publish") || !got.HasRole("witness") || got.HasRole("gateway") || got.HasRole("") {
		t.Errorf("HasRole wrong for roles %q", got.Roles)
	}
	if id := got.ID(); id != identity.DomainCertificate.Hash(b) || id != c.ID() {
		t.Errorf("ID = %x, want DomainCertificate.Hash(encoding)", id)
	}
	if (identity.Certificate{}).ID() != [32]byte{} {
		t.Error("ID of an unencodable certificate is not zero")
	}

	// No roles at all is a plain membership certificate.
	c0 := mustIssueCert(t, f.op, identity.Certificate{Network: "n", Device: f.dev.DeviceID(),
		Roles: []string{}, NotBefore: certT0, NotAfter: certT0.Add(time.Second), Serial: 1})
	got0, err := identity.DecodeCertificate(mustEncodeCert(t, c0))
	if err != nil || !reflect.DeepEqual(got0, c0) || c0.Roles != nil {
		t.Errorf("no-role certificate: decoded %+v, %v; issued %+v", got0, err, c0)
	}
}

// TestCertificateLayout pins the byte layout of PROTOCOL.md §16.1.
func TestCertificateLayout(t *testing.T) {
	f := newCertFixture(t)
	b := mustEncodeCert(t, f.cert)
	n := len(certTestNetwork)
	off := 0
	next := func(k int) []byte { p := b[off : off+k]; off += k; return p }
	check := func(name string, got, want []byte) {
		t.Helper()
		if !bytes.Equal(got, want) {
			t.Errorf("%s = %x, want %x", name, got, want)
		}
	}
	dev, op := f.dev.DeviceID(), f.op.DeviceID()
	check("magic+version", next(6), []byte("BMCRT\x01"))
	check("network", next(1+n), append([]byte{byte(n)}, certTestNetwork...))
	check("device", next(32), dev[:])
	check("operator", next(32), op[:])
	check("roles", next(1+8+8+8), []byte("\x03\x07gateway\x07publish\x07witness"))
	check("not_before", next(8), binary.BigEndian.AppendUint64(nil, uint64(certT0.Unix())))
	check("not_after", next(8), binary.BigEndian.AppendUint64(nil, uint64(certT0.Unix()+86400)))
	check("serial", next(8), binary.BigEndian.AppendUint64(nil, 7))
	check("signature", next(64), f.cert.Signature[:])
	if off != len(b) {
		t.Errorf("%d bytes left after the signature", len(b)-off)
	}
	// The signed message is the encoding without its signature.
	if err := op.Verify(identity.DomainCertificate, b[:len(b)-64], f.cert.Signature); err != nil {
		t.Errorf("signature over the unsigned encoding: %v", err)
	}
}

func TestCertificateVerify(t *testing.T) {
	f := newCertFixture(t)
	day := 24 * time.Hour
	c := f.cert
	tampered := func(mut func(*identity.Certificate)) identity.Certificate {
		d := c
		d.Roles = append([]string(nil), c.Roles...)
		mut(&d)
		return d
	}
	selfIssued := mustIssueCert(t, f.dev, identity.Certificate{Network: certTestNetwork, Device: f.dev.DeviceID(),
		Roles: c.Roles, NotBefore: c.NotBefore, NotAfter: c.NotAfter, Serial: c.Serial})
	forged := selfIssued
	forged.Operator = f.op.DeviceID() // the device signed, but claims op did
	wrongKey := mustIssueCert(t, f.op, identity.Certificate{Network: certTestNetwork, Device: f.dev.DeviceID(),
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, Serial: c.Serial})
	wrongKey.Roles = c.Roles // a genuine signature, over other bytes

	tests := []struct {
		name    string
		cert    identity.Certificate
		now     time.Time
		network string
		trusted []identity.DeviceID
		want    error
	}{
		{"valid at NotBefore", c, certT0, certTestNetwork, f.trusted, nil},
		{"valid mid-way", c, certT0.Add(day / 2), certTestNetwork, f.trusted, nil},
		{"valid 1ns before NotAfter", c, certT0.Add(day - 1), certTestNetwork, f.trusted, nil},
		{"not yet valid at NotBefore-1s", c, certT0.Add(-time.Second), certTestNetwork, f.trusted, identity.ErrCertNotYetValid},
		{"not yet valid at NotBefore-1ns", c, certT0.Add(-1), certTestNetwork, f.trusted, identity.ErrCertNotYetValid},
		{"expired at NotAfter exactly", c, certT0.Add(day), certTestNetwork, f.trusted, identity.ErrCertExpired},
		{"expired a year later", c, certT0.Add(365 * day), certTestNetwork, f.trusted, identity.ErrCertExpired},
		{"wrong network", c, certT0, "orchard", f.trusted, identity.ErrCertWrongNetwork},
		{"untrusted operator", c, certT0, certTestNetwork, []identity.DeviceID{f.other.DeviceID()}, identity.ErrCertUntrusted},
		{"no trusted operators", c, certT0, certTestNetwork, nil, identity.ErrCertUntrusted},
		{"self-issued by the device", selfIssued, certT0, certTestNetwork, f.trusted, identity.ErrCertUntrusted},
		{"signed by the device, operator claimed", forged, certT0, certTestNetwork, f.trusted, identity.ErrCertBadSignature},
		{"signature over other roles", wrongKey, certT0, certTestNetwork, f.trusted, identity.ErrCertBadSignature},
		{"tampered network", tampered(func(d *identity.Certificate) { d.Network = "orchard" }), certT0, "orchard", f.trusted, identity.ErrCertBadSignature},
		{"tampered device", tampered(func(d *identity.Certificate) { d.Device = f.other.DeviceID() }), certT0, certTestNetwork, f.trusted, identity.ErrCertBadSignature},
		{"tampered operator", tampered(func(d *identity.Certificate) { d.Operator = f.other.DeviceID() }), certT0, certTestNetwork, f.trusted, identity.ErrCertBadSignature},
		{"tampered roles", tampered(func(d *identity.Certificate) { d.Roles[0] = "admin" }), certT0, certTestNetwork, f.trusted, identity.ErrCertBadSignature},
		{"role dropped", tampered(func(d *identity.Certificate) { d.Roles = d.Roles[1:] }), certT0, certTestNetwork, f.trusted, identity.ErrCertBadSignature},
		{"tampered not_before", tampered(func(d *identity.Certificate) { d.NotBefore = d.NotBefore.Add(-time.Second) }), certT0, certTestNetwork, f.trusted, identity.ErrCertBadSignature},
		{"tampered not_after", tampered(func(d *identity.Certificate) { d.NotAfter = d.NotAfter.Add(time.Second) }), certT0, certTestNetwork, f.trusted, identity.ErrCertBadSignature},
		{"tampered serial", tampered(func(d *identity.Certificate) { d.Serial++ }), certT0, certTestNetwork, f.trusted, identity.ErrCertBadSignature},
		{"tampered signature", tampered(func(d *identity.Certificate) { d.Signature[10] ^= 1 }), certT0, certTestNetwork, f.trusted, identity.ErrCertBadSignature},
		{"zero signature", tampered(func(d *identity.Certificate) { d.Signature = identity.Signature{} }), certT0, certTestNetwork, f.trusted, identity.ErrCertBadSignature},
		{"hand-built unsorted roles", tampered(func(d *identity.Certificate) { d.Roles[0], d.Roles[1] = d.Roles[1], d.Roles[0] }), certT0, certTestNetwork, f.trusted, identity.ErrCertMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cert.Verify(tt.now, tt.network, tt.trusted)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if tt.want == identity.ErrCertBadSignature && !errors.Is(err, identity.ErrBadSignature) {
				t.Errorf("%v does not wrap ErrBadSignature", err)
			}
		})
	}
}

// TestCertificateVerifyOrder: cheap checks come before the signature, so a
// forged certificate for another network or from a stranger is reported as
// such, and an expired forgery as expired.
func TestCertificateVerifyOrder(t *testing.T) {
	f := newCertFixture(t)
	bad := f.cert
	bad.Signature[0] ^= 1
	for _, tt := range []struct {
		name    string
		now     time.Time
		network string
		trusted []identity.DeviceID
		want    error
	}{
		{"network first", certT0.Add(-time.Hour), "orchard", nil, identity.ErrCertWrongNetwork},
		{"then issuer", certT0.Add(-time.Hour), certTestNetwork, nil, identity.ErrCertUntrusted},
		{"then time", certT0.Add(-time.Hour), certTestNetwork, f.trusted, identity.ErrCertNotYetValid},
		{"signature last", certT0, certTestNetwork, f.trusted, identity.ErrCertBadSignature},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := bad.Verify(tt.now, tt.network, tt.trusted); !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestCredentialDomainSeparation: a signature made in one domain never
// verifies in the other, even over the very same bytes.
func TestCredentialDomainSeparation(t *testing.T) {
	f := newCertFixture(t)
	b := mustEncodeCert(t, f.cert)
	unsigned := b[:len(b)-identity.SignatureSize]

	sig, err := f.op.Sign(identity.DomainRevocation, unsigned)
	if err != nil {
		t.Fatal(err)
	}
	c := f.cert
	c.Signature = sig
	if err := c.Verify(certT0, certTestNetwork, f.trusted); !errors.Is(err, identity.ErrCertBadSignature) {
		t.Errorf("certificate signed in the revocation domain: Verify = %v, want ErrCertBadSignature", err)
	}
	if err := f.op.DeviceID().Verify(identity.DomainRevocation, unsigned, f.cert.Signature); err == nil {
		t.Error("a certificate signature verifies in the revocation domain")
	}

	r := mustIssueRev(t, f.op, identity.Revocation{Network: certTestNetwork, Device: f.dev.DeviceID(), Serial: 7, Time: certT0})
	rb, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if r.Signature, err = f.op.Sign(identity.DomainCertificate, rb[:len(rb)-identity.SignatureSize]); err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(certTestNetwork, f.trusted); !errors.Is(err, identity.ErrCertBadSignature) {
		t.Errorf("revocation signed in the certificate domain: Verify = %v, want ErrCertBadSignature", err)
	}
}

func TestIssueCertificateRejects(t *testing.T) {
	f := newCertFixture(t)
	valid := identity.Certificate{Network: certTestNetwork, Device: f.dev.DeviceID(), Roles: []string{"publish"},
		NotBefore: certT0, NotAfter: certT0.Add(time.Hour), Serial: 1}
	var notOnCurve identity.DeviceID
	copy(notOnCurve[:], bytes.Repeat([]byte{0xff}, 32)) // not below the field size
	tests := []struct {
		name  string
		mut   func(*identity.Certificate)
		field string
	}{
		{"empty network", func(c *identity.Certificate) { c.Network = "" }, "network"},
		{"65-byte network", func(c *identity.Certificate) { c.Network = strings.Repeat("n", 65) }, "network"},
		{"space in network", func(c *identity.Certificate) { c.Network = "green house" }, "network"},
		{"non-ASCII network", func(c *identity.Certificate) { c.Network = "gewächshaus" }, "network"},
		{"device not a key", func(c *identity.Certificate) { c.Device = notOnCurve }, "device"},
		{"empty role", func(c *identity.Certificate) { c.Roles = []string{""} }, "role"},
		{"33-byte role", func(c *identity.Certificate) { c.Roles = []string{strings.Repeat("r", 33)} }, "role"},
		{"upper-case role", func(c *identity.Certificate) { c.Roles = []string{"Publish"} }, "role"},
		{"role with underscore", func(c *identity.Certificate) { c.Roles = []string{"pub_lish"} }, "role"},
		{"duplicate roles", func(c *identity.Certificate) { c.Roles = []string{"publish", "gateway", "publish"} }, "roles"},
		{"nine roles", func(c *identity.Certificate) { c.Roles = strings.Split("a,b,c,d,e,f,g,h,i", ",") }, "roles"},
		{"NotAfter = NotBefore", func(c *identity.Certificate) { c.NotAfter = c.NotBefore }, "not_after"},
		{"NotAfter < NotBefore", func(c *identity.Certificate) { c.NotAfter = c.NotBefore.Add(-time.Hour) }, "not_after"},
		{"NotAfter within the same second", func(c *identity.Certificate) { c.NotAfter = c.NotBefore.Add(999 * time.Millisecond) }, "not_after"},
		{"zero NotBefore", func(c *identity.Certificate) { c.NotBefore = time.Time{} }, "not_before"},
		{"NotBefore before 1970", func(c *identity.Certificate) { c.NotBefore = time.Unix(-1, 0) }, "not_before"},
		{"NotAfter after 9999", func(c *identity.Certificate) { c.NotAfter = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "not_after"},
		{"serial 0", func(c *identity.Certificate) { c.Serial = 0 }, "serial"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.mut(&c)
			_, err := identity.IssueCertificate(f.op, c)
			wantMalformed(t, err, tt.field)
			if tt.field != "device" {
				c.Operator = f.op.DeviceID()
				_, err = c.Encode()
				wantMalformed(t, err, tt.field)
			}
		})
	}
	// Bounds that are allowed.
	c := valid
	c.Network = strings.Repeat("~", 64)
	c.Roles = nil
	for _, ch := range "-0az9bcd" {
		c.Roles = append(c.Roles, strings.Repeat(string(ch), 32))
	}
	c.NotBefore = time.Unix(0, 0)
	c.NotAfter = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	c.Serial = ^uint64(0)
	c = mustIssueCert(t, f.op, c)
	if b := mustEncodeCert(t, c); len(b) != identity.MaxCertificateSize {
		t.Errorf("largest certificate is %d bytes, want MaxCertificateSize %d", len(b), identity.MaxCertificateSize)
	}
}

// rawCert builds certificate bytes field by field without any validation,
// so decode tests can write what an encoder never would.
type rawCert struct {
	header    string
	network   string
	netLen    int // -1: len(network)
	device    identity.DeviceID
	operator  identity.DeviceID
	roleCount int // -1: len(roles)
	roles     []string
	notBefore int64
	notAfter  int64
	serial    uint64
	sig       identity.Signature
	trailing  []byte
}

func rawCertOf(c identity.Certificate) rawCert {
	return rawCert{"BMCRT\x01", c.Network, -1, c.Device, c.Operator, -1, c.Roles,
		c.NotBefore.Unix(), c.NotAfter.Unix(), c.Serial, c.Signature, nil}
}

func (r rawCert) bytes() []byte {
	b := []byte(r.header)
	n := r.netLen
	if n < 0 {
		n = len(r.network)
	}
	b = append(b, byte(n))
	b = append(b, r.network...)
	b = append(b, r.device[:]...)
	b = append(b, r.operator[:]...)
	n = r.roleCount
	if n < 0 {
		n = len(r.roles)
	}
	b = append(b, byte(n))
	for _, s := range r.roles {
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(r.notBefore))
	b = binary.BigEndian.AppendUint64(b, uint64(r.notAfter))
	b = binary.BigEndian.AppendUint64(b, r.serial)
	b = append(b, r.sig[:]...)
	return append(b, r.trailing...)
}

func TestDecodeCertificateRejects(t *testing.T) {
	f := newCertFixture(t)
	good := rawCertOf(f.cert)
	if _, err := identity.DecodeCertificate(good.bytes()); err != nil {
		t.Fatalf("baseline does not decode: %v", err)
	}
	nine := strings.Split("a,b,c,d,e,f,g,h,i", ",")
	tests := []struct {
		name  string
		mut   func(*rawCert)
		field string
	}{
		{"trailing byte", func(r *rawCert) { r.trailing = []byte{0} }, "size"},
		{"bad magic", func(r *rawCert) { r.header = "BMREV\x01" }, "magic"},
		{"lower-case magic", func(r *rawCert) { r.header = "bmcrt\x01" }, "magic"},
		{"version 0", func(r *rawCert) { r.header = "BMCRT\x00" }, "version"},
		{"version 2", func(r *rawCert) { r.header = "BMCRT\x02" }, "version"},
		{"zero-length network", func(r *rawCert) { r.network = "" }, "network"},
		{"overlong network", func(r *rawCert) { r.network = strings.Repeat("n", 65) }, "network"},
		{"network length 255", func(r *rawCert) { r.netLen = 255 }, "network"},
		{"network with a control byte", func(r *rawCert) { r.network = "green\x00house" }, "network"},
		{"network with DEL", func(r *rawCert) { r.network = "green\x7f" }, "network"},
		{"unsorted roles", func(r *rawCert) { r.roles = []string{"publish", "gateway"} }, "roles"},
		{"duplicate roles", func(r *rawCert) { r.roles = []string{"gateway", "gateway"} }, "roles"},
		{"empty role", func(r *rawCert) { r.roles = []string{""} }, "role"},
		{"overlong role", func(r *rawCert) { r.roles = []string{strings.Repeat("r", 33)} }, "role"},
		{"upper-case role", func(r *rawCert) { r.roles = []string{"Gateway"} }, "role"},
		{"role with a space", func(r *rawCert) { r.roles = []string{"gate way"} }, "role"},
		{"role with a high byte", func(r *rawCert) { r.roles = []string{"gate\xc3\xa9"} }, "role"},
		{"nine roles", func(r *rawCert) { r.roles = nine }, "roles"},
		{"role count 255", func(r *rawCert) { r.roleCount = 255 }, "roles"},
		{"role count above roles present", func(r *rawCert) { r.roleCount = 4 }, ""},
		{"not_after = not_before", func(r *rawCert) { r.notAfter = r.notBefore }, "not_after"},
		{"not_after < not_before", func(r *rawCert) { r.notAfter = r.notBefore - 1 }, "not_after"},
		{"negative not_before", func(r *rawCert) { r.notBefore = -1 }, "not_before"},
		{"not_after after 9999", func(r *rawCert) { r.notAfter = 253402300800 }, "not_after"},
		{"not_after max int64", func(r *rawCert) { r.notAfter = 1<<63 - 1 }, "not_after"},
		{"serial 0", func(r *rawCert) { r.serial = 0 }, "serial"},
		{"oversize", func(r *rawCert) { r.trailing = make([]byte, identity.MaxCertificateSize) }, "size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			tt.mut(&r)
			_, err := identity.DecodeCertificate(r.bytes())
			wantMalformed(t, err, tt.field)
		})
	}
	t.Run("empty", func(t *testing.T) {
		_, err := identity.DecodeCertificate(nil)
		wantMalformed(t, err, "magic")
	})
	t.Run("one byte over MaxCertificateSize", func(t *testing.T) {
		_, err := identity.DecodeCertificate(make([]byte, identity.MaxCertificateSize+1))
		wantMalformed(t, err, "size")
	})
	t.Run("truncated at every length", func(t *testing.T) {
		b := good.bytes()
		for n := range len(b) {
			_, err := identity.DecodeCertificate(b[:n])
			var ce *identity.CertError
			if !errors.Is(err, identity.ErrCertMalformed) || !errors.As(err, &ce) {
				t.Fatalf("truncated to %d of %d bytes: %v, want a *CertError", n, len(b), err)
			}
		}
	})
}

func TestReadCertificateFile(t *testing.T) {
	good := mustEncodeCert(t, newCertFixture(t).cert)
	writeFile := func(b []byte) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T, path string)
		want    []byte
		wantErr error
	}{
		{"certificate", writeFile(good), good, nil},
		{"empty file", writeFile(nil), []byte{}, nil},
		{"missing", func(*testing.T, string) {}, nil, fs.ErrNotExist},
		{"one byte over the limit", writeFile(make([]byte, identity.MaxCertificateSize+1)), nil, identity.ErrCertMalformed},
		{"200 MB", func(t *testing.T, path string) {
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(200 << 20); err != nil { // sparse: costs no disk
				t.Fatal(err)
			}
		}, nil, identity.ErrCertMalformed},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}, nil, identity.ErrNotRegularFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "device.cert")
			tt.setup(t, path)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			got, err := identity.ReadCertificateFile(path)
			runtime.ReadMemStats(&after)
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
				t.Errorf("allocated %d bytes reading the file", alloc)
			}
			if tt.wantErr == nil {
				if err != nil || !bytes.Equal(got, tt.want) {
					t.Fatalf("ReadCertificateFile = %x, %v; want %x", got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || got != nil {
				t.Fatalf("ReadCertificateFile = %d bytes, %v; want %v", len(got), err, tt.wantErr)
			}
			if errors.Is(tt.wantErr, identity.ErrCertMalformed) {
				wantMalformed(t, err, "size")
			}
		})
	}
}

func TestRevocationRoundTrip(t *testing.T) {
	f := newCertFixture(t)
	r := mustIssueRev(t, f.op, identity.Revocation{
		Network:  certTestNetwork,
		Operator: f.other.DeviceID(), // overwritten
		Device:   f.dev.DeviceID(),
		Serial:   7,
		Time:     certT0.Add(1500 * time.Millisecond),
		Reason:   "device stolen — key compromised",
	})
	if r.Operator != f.op.DeviceID() || !r.Time.Equal(certT0.Add(time.Second)) {
		t.Errorf("issued %+v: want operator %s and time truncated to seconds", r, f.op.DeviceID())
	}
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if want := 152 + len(certTestNetwork) + len(r.Reason); len(b) != want {
		t.Errorf("encoding is %d bytes, want %d", len(b), want)
	}
	if !bytes.HasPrefix(b, []byte("BMREV\x01")) {
		t.Errorf("encoding starts %q, want BMREV v1", b[:6])
	}
	got, err := identity.DecodeRevocation(b)
	if err != nil {
		t.Fatalf("DecodeRevocation: %v", err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("decoded\n%+v\nwant\n%+v", got, r)
	}
	if b2, _ := got.Encode(); !bytes.Equal(b2, b) {
		t.Error("re-encoding differs")
	}
	if err := got.Verify(certTestNetwork, f.trusted); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if err := f.op.DeviceID().Verify(identity.DomainRevocation, b[:len(b)-64], r.Signature); err != nil {
		t.Errorf("signature over the unsigned encoding: %v", err)
	}
}

func TestRevocationVerify(t *testing.T) {
	f := newCertFixture(t)
	r := mustIssueRev(t, f.op, identity.Revocation{Network: certTestNetwork, Device: f.dev.DeviceID(), Serial: 7, Time: certT0})
	byDevice := mustIssueRev(t, f.dev, identity.Revocation{Network: certTestNetwork, Device: f.dev.DeviceID(), Time: certT0})
	forged := byDevice
	forged.Operator = f.op.DeviceID()
	tamper := func(mut func(*identity.Revocation)) identity.Revocation { d := r; mut(&d); return d }
	tests := []struct {
		name    string
		rev     identity.Revocation
		network string
		trusted []identity.DeviceID
		want    error
	}{
		{"valid", r, certTestNetwork, f.trusted, nil},
		{"wrong network", r, "orchard", f.trusted, identity.ErrCertWrongNetwork},
		{"untrusted operator", r, certTestNetwork, []identity.DeviceID{f.other.DeviceID()}, identity.ErrCertUntrusted},
		{"issued by the device itself", byDevice, certTestNetwork, f.trusted, identity.ErrCertUntrusted},
		{"signed by the device, operator claimed", forged, certTestNetwork, f.trusted, identity.ErrCertBadSignature},
		{"tampered network", tamper(func(d *identity.Revocation) { d.Network = "orchard" }), "orchard", f.trusted, identity.ErrCertBadSignature},
		{"tampered operator", tamper(func(d *identity.Revocation) { d.Operator = f.other.DeviceID() }), certTestNetwork, f.trusted, identity.ErrCertBadSignature},
		{"tampered device", tamper(func(d *identity.Revocation) { d.Device = f.other.DeviceID() }), certTestNetwork, f.trusted, identity.ErrCertBadSignature},
		{"serial widened to 0", tamper(func(d *identity.Revocation) { d.Serial = 0 }), certTestNetwork, f.trusted, identity.ErrCertBadSignature},
		{"tampered time", tamper(func(d *identity.Revocation) { d.Time = d.Time.Add(time.Second) }), certTestNetwork, f.trusted, identity.ErrCertBadSignature},
		{"tampered reason", tamper(func(d *identity.Revocation) { d.Reason = "x" }), certTestNetwork, f.trusted, identity.ErrCertBadSignature},
		{"tampered signature", tamper(func(d *identity.Revocation) { d.Signature[63] ^= 1 }), certTestNetwork, f.trusted, identity.ErrCertBadSignature},
		{"hand-built invalid reason", tamper(func(d *identity.Revocation) { d.Reason = "\xff" }), certTestNetwork, f.trusted, identity.ErrCertMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rev.Verify(tt.network, tt.trusted)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestIssueRevocationRejects(t *testing.T) {
	f := newCertFixture(t)
	valid := identity.Revocation{Network: certTestNetwork, Device: f.dev.DeviceID(), Time: certT0}
	for _, tt := range []struct {
		name  string
		mut   func(*identity.Revocation)
		field string
	}{
		{"empty network", func(r *identity.Revocation) { r.Network = "" }, "network"},
		{"65-byte network", func(r *identity.Revocation) { r.Network = strings.Repeat("n", 65) }, "network"},
		{"zero time", func(r *identity.Revocation) { r.Time = time.Time{} }, "time"},
		{"129-byte reason", func(r *identity.Revocation) { r.Reason = strings.Repeat("x", 129) }, "reason"},
		{"invalid UTF-8 reason", func(r *identity.Revocation) { r.Reason = "bad \xc3" }, "reason"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := valid
			tt.mut(&r)
			_, err := identity.IssueRevocation(f.op, r)
			wantMalformed(t, err, tt.field)
			_, err = r.Encode()
			wantMalformed(t, err, tt.field)
		})
	}
	r := valid
	r.Network = strings.Repeat("!", 64)
	r.Reason = strings.Repeat("é", 64) // 128 bytes
	r = mustIssueRev(t, f.op, r)
	if b, err := r.Encode(); err != nil || len(b) != identity.MaxRevocationSize {
		t.Errorf("largest revocation: %d bytes, %v; want MaxRevocationSize %d", len(b), err, identity.MaxRevocationSize)
	}
}

type rawRev struct {
	header    string
	network   string
	operator  identity.DeviceID
	device    identity.DeviceID
	serial    uint64
	time      int64
	reasonLen int // -1: len(reason)
	reason    string
	sig       identity.Signature
	trailing  []byte
}

func (r rawRev) bytes() []byte {
	b := append([]byte(r.header), byte(len(r.network)))
	b = append(b, r.network...)
	b = append(b, r.operator[:]...)
	b = append(b, r.device[:]...)
	b = binary.BigEndian.AppendUint64(b, r.serial)
	b = binary.BigEndian.AppendUint64(b, uint64(r.time))
	n := r.reasonLen
	if n < 0 {
		n = len(r.reason)
	}
	b = append(b, byte(n))
	b = append(b, r.reason...)
	b = append(b, r.sig[:]...)
	return append(b, r.trailing...)
}

func TestDecodeRevocationRejects(t *testing.T) {
	f := newCertFixture(t)
	rv := mustIssueRev(t, f.op, identity.Revocation{Network: certTestNetwork, Device: f.dev.DeviceID(), Time: certT0, Reason: "lost"})
	good := rawRev{"BMREV\x01", rv.Network, rv.Operator, rv.Device, rv.Serial, rv.Time.Unix(), -1, rv.Reason, rv.Signature, nil}
	if enc, _ := rv.Encode(); !bytes.Equal(good.bytes(), enc) {
		t.Fatal("raw baseline differs from Encode")
	}
	tests := []struct {
		name  string
		mut   func(*rawRev)
		field string
	}{
		{"trailing byte", func(r *rawRev) { r.trailing = []byte{0} }, "size"},
		{"certificate magic", func(r *rawRev) { r.header = "BMCRT\x01" }, "magic"},
		{"version 2", func(r *rawRev) { r.header = "BMREV\x02" }, "version"},
		{"zero-length network", func(r *rawRev) { r.network = "" }, "network"},
		{"overlong network", func(r *rawRev) { r.network = strings.Repeat("n", 65) }, "network"},
		{"network with a space", func(r *rawRev) { r.network = "green house" }, "network"},
		{"negative time", func(r *rawRev) { r.time = -1 }, "time"},
		{"time after 9999", func(r *rawRev) { r.time = 253402300800 }, "time"},
		{"reason length 129", func(r *rawRev) { r.reason = strings.Repeat("x", 129) }, "reason"},
		{"reason length 255", func(r *rawRev) { r.reasonLen = 255 }, "reason"},
		{"reason not UTF-8", func(r *rawRev) { r.reason = "\xff\xfe" }, "reason"},
		{"reason length beyond the end", func(r *rawRev) { r.reasonLen = 100 }, ""},
		{"oversize", func(r *rawRev) { r.trailing = make([]byte, identity.MaxRevocationSize) }, "size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			tt.mut(&r)
			_, err := identity.DecodeRevocation(r.bytes())
			wantMalformed(t, err, tt.field)
		})
	}
	t.Run("truncated at every length", func(t *testing.T) {
		b := good.bytes()
		for n := range len(b) {
			_, err := identity.DecodeRevocation(b[:n])
			var ce *identity.CertError
			if !errors.Is(err, identity.ErrCertMalformed) || !errors.As(err, &ce) {
				t.Fatalf("truncated to %d of %d bytes: %v, want a *CertError", n, len(b), err)
			}
		}
	})
}

func TestRevocationCovers(t *testing.T) {
	f := newCertFixture(t)
	c := f.cert // serial 7
	base := identity.Revocation{Network: c.Network, Operator: c.Operator, Device: c.Device, Serial: 7, Time: certT0}
	tests := []struct {
		name string
		mut  func(*identity.Revocation)
		want bool
	}{
		{"same serial", func(*identity.Revocation) {}, true},
		{"serial 0 = all", func(r *identity.Revocation) { r.Serial = 0 }, true},
		{"other serial", func(r *identity.Revocation) { r.Serial = 8 }, false},
		{"other device", func(r *identity.Revocation) { r.Device = f.other.DeviceID() }, false},
		{"other device, serial 0", func(r *identity.Revocation) { r.Device, r.Serial = f.other.DeviceID(), 0 }, false},
		{"other operator", func(r *identity.Revocation) { r.Operator = f.other.DeviceID() }, false},
		{"other operator, serial 0", func(r *identity.Revocation) { r.Operator, r.Serial = f.other.DeviceID(), 0 }, false},
		{"other network", func(r *identity.Revocation) { r.Network = "orchard" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base
			tt.mut(&r)
			if got := r.Covers(c); got != tt.want {
				t.Fatalf("Covers = %v, want %v", got, tt.want)
			}
			var l identity.RevocationList
			if err := l.Add(r); err != nil {
				t.Fatal(err)
			}
			if got := l.Revoked(c); got != tt.want {
				t.Errorf("Revoked = %v, want %v (as Covers)", got, tt.want)
			}
			if err := l.Check(c); (err != nil) != tt.want || (err != nil && !errors.Is(err, identity.ErrCertRevoked)) {
				t.Errorf("Check = %v, want revoked %v", err, tt.want)
			}
		})
	}
}

func TestRevocationList(t *testing.T) {
	f := newCertFixture(t)
	var l identity.RevocationList
	if l.Len() != 0 || len(l.All()) != 0 || l.Revoked(f.cert) {
		t.Fatal("zero RevocationList is not empty")
	}
	later := f.cert
	later.Serial = 8
	one := identity.Revocation{Network: certTestNetwork, Operator: f.op.DeviceID(), Device: f.dev.DeviceID(), Serial: 7}
	if err := l.Add(one); err != nil {
		t.Fatal(err)
	}
	if !l.Revoked(f.cert) || l.Revoked(later) {
		t.Errorf("after revoking serial 7: Revoked(7) = %v, Revoked(8) = %v", l.Revoked(f.cert), l.Revoked(later))
	}
	if err := l.Add(one); err != nil || l.Len() != 1 {
		t.Errorf("adding a held revocation again: %v, Len %d, want nil and 1", err, l.Len())
	}
	all := one
	all.Serial = 0
	if err := l.Add(all); err != nil {
		t.Fatal(err)
	}
	if !l.Revoked(later) || l.Len() != 2 {
		t.Errorf("after revoking serial 0: Revoked(8) = %v, Len %d", l.Revoked(later), l.Len())
	}
	if got, want := l.All(), []identity.Revocation{all, one}; !reflect.DeepEqual(got, want) {
		t.Errorf("All = %+v, want %+v (ordered by serial)", got, want)
	}
	got := l.All()
	got[0].Serial = 99 // a copy: the list is unaffected
	if !l.Revoked(later) {
		t.Error("All exposed the list's storage")
	}
}

func TestRevocationListBound(t *testing.T) {
	f := newCertFixture(t)
	var l identity.RevocationList
	r := identity.Revocation{Network: certTestNetwork, Operator: f.op.DeviceID(), Device: f.dev.DeviceID()}
	for i := range identity.MaxRevocations {
		r.Serial = uint64(i) + 1
		if err := l.Add(r); err != nil {
			t.Fatalf("Add #%d: %v", i, err)
		}
	}
	r.Serial = 0
	if err := l.Add(r); !errors.Is(err, identity.ErrRevocationListFull) {
		t.Fatalf("Add to a full list = %v, want ErrRevocationListFull", err)
	}
	beyond := f.cert
	beyond.Serial = identity.MaxRevocations + 1
	if l.Len() != identity.MaxRevocations || l.Revoked(beyond) {
		t.Errorf("full list: Len %d, or the refused serial-0 revocation was kept", l.Len())
	}
	r.Serial = 1
	if err := l.Add(r); err != nil {
		t.Errorf("re-adding a held revocation to a full list: %v", err)
	}
	if !l.Revoked(f.cert) { // serial 7 is among those held
		t.Error("full list forgot a revocation")
	}
}

func TestRevocationListConcurrent(t *testing.T) {
	f := newCertFixture(t)
	var l identity.RevocationList
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := identity.Revocation{Network: certTestNetwork, Operator: f.op.DeviceID(), Device: f.dev.DeviceID()}
			for i := range 100 {
				r.Serial = uint64(g*100+i) + 1
				if err := l.Add(r); err != nil {
					t.Error(err)
					return
				}
				l.Revoked(f.cert)
				l.Len()
				if i%25 == 0 {
					l.All()
				}
			}
		})
	}
	wg.Wait()
	if l.Len() != 800 || len(l.All()) != 800 {
		t.Errorf("Len %d, All %d, want 800", l.Len(), len(l.All()))
	}
}

func FuzzDecodeCertificate(f *testing.F) {
	fx := newCertFixture(f)
	f.Add(mustEncodeCert(f, fx.cert))
	c := mustIssueCert(f, fx.op, identity.Certificate{Network: "n", Device: fx.dev.DeviceID(),
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1, 0), Serial: 1})
	f.Add(mustEncodeCert(f, c))
	f.Add([]byte("BMCRT\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := identity.DecodeCertificate(b)
		if err != nil {
			var ce *identity.CertError
			if !errors.As(err, &ce) || !errors.Is(err, identity.ErrCertMalformed) {
				t.Fatalf("error %v is not a *CertError", err)
			}
			return
		}
		out, err := c.Encode()
		if err != nil {
			t.Fatalf("decoded certificate does not encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, out)
		}
		_ = c.Verify(c.NotBefore, c.Network, []identity.DeviceID{c.Operator})
	})
}

func FuzzDecodeRevocation(f *testing.F) {
	fx := newCertFixture(f)
	r := mustIssueRev(f, fx.op, identity.Revocation{Network: certTestNetwork, Device: fx.dev.DeviceID(), Serial: 3, Time: certT0, Reason: "rotated"})
	b, err := r.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("BMREV\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := identity.DecodeRevocation(b)
		if err != nil {
			var ce *identity.CertError
			if !errors.As(err, &ce) || !errors.Is(err, identity.ErrCertMalformed) {
				t.Fatalf("error %v is not a *CertError", err)
			}
			return
		}
		out, err := r.Encode()
		if err != nil {
			t.Fatalf("decoded revocation does not encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, out)
		}
		_ = r.Verify(r.Network, []identity.DeviceID{r.Operator})
	})
}

func ExampleIssueCertificate() {
	operator, _ := identity.PrivateKeyFromBytes(bytes.Repeat([]byte{0x01}, 32))
	device, _ := identity.PrivateKeyFromBytes(bytes.Repeat([]byte{0x02}, 32))
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	cert, err := identity.IssueCertificate(operator, identity.Certificate{
		Network:   "greenhouse",
		Device:    device.DeviceID(),
		Roles:     []string{"publish", "gateway"},
		NotBefore: start,
		NotAfter:  start.AddDate(1, 0, 0),
		Serial:    1,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	wire, _ := cert.Encode() // what a device presents to its peers

	// A peer decodes and verifies against the operators it trusts.
	got, err := identity.DecodeCertificate(wire)
	if err != nil {
		fmt.Println(err)
		return
	}
	trusted := []identity.DeviceID{operator.DeviceID()}
	fmt.Println(len(wire), got.Roles, got.HasRole("gateway"))
	fmt.Println(got.Verify(start.Add(time.Hour), "greenhouse", trusted))
	fmt.Println(got.Verify(start.AddDate(2, 0, 0), "greenhouse", trusted))

	// The operator revokes every certificate of the device (serial 0).
	rev, _ := identity.IssueRevocation(operator, identity.Revocation{
		Network: "greenhouse", Device: device.DeviceID(), Time: start.AddDate(0, 6, 0), Reason: "stolen",
	})
	var revoked identity.RevocationList
	if err := rev.Verify("greenhouse", trusted); err == nil {
		_ = revoked.Add(rev)
	}
	fmt.Println(revoked.Revoked(got))
	// Output:
	// 186 [gateway publish] true
	// <nil>
	// identity: certificate expired: valid until 2027-01-01T00:00:00Z, now 2028-01-01T00:00:00Z
	// true
}

func TestRevocationListRevokesDevice(t *testing.T) {
	op, dev, other := certKey(t, 0x11), certKey(t, 0x12), certKey(t, 0x13)
	var l identity.RevocationList
	one, err := identity.IssueRevocation(op, identity.Revocation{Network: "n", Device: other.DeviceID(), Serial: 7, Time: time.Unix(1_800_000_000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	all, err := identity.IssueRevocation(op, identity.Revocation{Network: "n", Device: dev.DeviceID(), Time: time.Unix(1_800_000_000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []identity.Revocation{one, all} {
		if err := l.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if !l.RevokesDevice(dev.DeviceID()) {
		t.Error("a serial-0 revocation does not revoke the device")
	}
	if l.RevokesDevice(other.DeviceID()) {
		t.Error("a single-serial revocation revokes the whole device")
	}
}

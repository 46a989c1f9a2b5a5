package node

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/identity"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// CertificateFileName is the device certificate's name in the data
// directory; a permissioned node loads it at start.
const CertificateFileName = "device.cert"

// AdmissionProtocol is the stream protocol over which two peers of a
// permissioned mesh hand each other the certificates and revocations they
// know, right after they connect.
const AdmissionProtocol = protocol.ID("/bitmesh/admission/1.0.0")

// ErrNotCertified: the device has no valid, unrevoked certificate from a
// trusted operator.
var ErrNotCertified = errors.New("node: device not certified")

// Bounds of one admission exchange: a mesh of this many devices and
// revocations fits; a peer that sends more is cut off.
const (
	maxAdmissionRecords = 1 << 16
	maxRecordSize       = 1 << 12
	maxCertificates     = 1 << 16
)

// admission is a permissioned node's view of who may take part: the
// trusted operators, the certificates it has verified and the revocations
// it has verified. Safe for concurrent use.
type admission struct {
	network   string
	operators []identity.DeviceID
	own       []byte // this device's encoded certificate; nil if it has none

	mu      sync.Mutex // guards certs
	certs   map[identity.DeviceID]identity.Certificate
	revoked identity.RevocationList
}

func newAdmission(cfg Config, self identity.DeviceID) (*admission, error) {
	a := &admission{network: cfg.Network, certs: make(map[identity.DeviceID]identity.Certificate)}
	for _, s := range cfg.Operators {
		d, err := identity.ParseDeviceID(s)
		if err != nil {
			return nil, fmt.Errorf("node: operator %q: %w", s, err)
		}
		a.operators = append(a.operators, d)
	}
	own := cfg.Certificate
	if own == nil && cfg.DataDir != "" {
		b, err := identity.ReadCertificateFile(filepath.Join(cfg.DataDir, CertificateFileName))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("node: own certificate: %w", err)
		}
		own = b
	}
	if own != nil {
		c, err := identity.DecodeCertificate(own)
		if err != nil {
			return nil, fmt.Errorf("node: own certificate: %w", err)
		}
		if c.Device != self {
			return nil, fmt.Errorf("node: own certificate is for %s, not this device %s", c.Device, self)
		}
		a.own = own
	}
	return a, nil
}

// record is the effect of a verified admission record.
type record struct {
	isNew   bool               // not known before: worth passing on
	revoked *identity.DeviceID // for a revocation, the device it cuts off
}

// addRecord verifies an encoded certificate or revocation and keeps it.
func (a *admission) addRecord(now time.Time, b []byte) (record, error) {
	if c, cerr := identity.DecodeCertificate(b); cerr == nil {
		isNew, err := a.addCertificate(now, c)
		return record{isNew: isNew}, err
	}
	r, err := identity.DecodeRevocation(b)
	if err != nil {
		return record{}, fmt.Errorf("node: admission record is neither a certificate nor a revocation: %w", err)
	}
	if err := r.Verify(a.network, a.operators); err != nil {
		return record{}, err
	}
	held := a.revoked.Len()
	if err := a.revoked.Add(r); err != nil {
		return record{}, err
	}
	a.mu.Lock()
	if c, ok := a.certs[r.Device]; ok && r.Covers(c) {
		delete(a.certs, r.Device)
	}
	a.mu.Unlock()
	return record{isNew: a.revoked.Len() > held, revoked: &r.Device}, nil
}

func (a *admission) addCertificate(now time.Time, c identity.Certificate) (isNew bool, err error) {
	if err := c.Verify(now, a.network, a.operators); err != nil {
		return false, err
	}
	if err := a.revoked.Check(c); err != nil {
		return false, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if old, ok := a.certs[c.Device]; ok && !old.NotAfter.Before(c.NotAfter) {
		return false, nil // keep the one that lasts longer
	}
	if len(a.certs) >= maxCertificates {
		return false, fmt.Errorf("node: %d certificates known, refusing more", maxCertificates)
	}
	a.certs[c.Device] = c
	return true, nil
}

// certified reports whether d holds a certificate valid at now. Signatures
// were checked when the certificate arrived; here only time and
// revocation can change the answer.
func (a *admission) certified(now time.Time, d identity.DeviceID) bool {
	a.mu.Lock()
	c, ok := a.certs[d]
	a.mu.Unlock()
	return ok && !now.Before(c.NotBefore) && now.Before(c.NotAfter) && !a.revoked.Revoked(c)
}

// records returns every record to hand a new peer: the certificates
// (our own among them, once verified at start) and revocations we know.
func (a *admission) records() ([][]byte, error) {
	var out [][]byte
	a.mu.Lock()
	certs := make([]identity.Certificate, 0, len(a.certs))
	for _, c := range a.certs {
		certs = append(certs, c)
	}
	a.mu.Unlock()
	for _, c := range certs {
		b, err := c.Encode()
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	for _, r := range a.revoked.All() {
		b, err := r.Encode()
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// admissionTopic is the GossipSub topic carrying new certificates and
// revocations. Its prefix differs from envelope topics' so no user topic
// can collide with it.
func (n *Node) admissionTopic() string { return "bitmesh-admission/" + n.cfg.Network }

// startAdmission runs with n.mu held, after the host and pubsub exist. The
// admission topic is joined before the stream handler and the connection
// callback exist, since both may publish on it.
func (n *Node) startAdmission() error {
	name := n.admissionTopic()
	if err := n.ps.RegisterTopicValidator(name, n.admissionValidator); err != nil {
		return fmt.Errorf("node: admission topic: %w", err)
	}
	t, err := n.ps.Join(name)
	if err != nil {
		return fmt.Errorf("node: admission topic: %w", err)
	}
	sub, err := t.Subscribe()
	if err != nil {
		return fmt.Errorf("node: admission topic: %w", err)
	}
	n.admissionT = t
	// Records take effect in the validator; the subscription only keeps
	// this node in the topic's mesh.
	n.spawn(func(ctx context.Context) {
		defer sub.Cancel()
		for {
			if _, err := sub.Next(ctx); err != nil {
				return
			}
		}
	})
	if err := n.handleStream(AdmissionProtocol, n.admissionStreams(), n.handleAdmissionStream); err != nil {
		return err
	}
	n.host.Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		p := c.RemotePeer()
		n.goIfRunning(func(ctx context.Context) { n.admitPeer(ctx, p) })
	}})
	switch {
	case n.adm.own == nil:
		n.log.Warn("permissioned mesh but this device has no certificate: peers will refuse it",
			"device_id", n.key.DeviceID(), "want", filepath.Join(n.cfg.DataDir, CertificateFileName))
	default:
		if _, err := n.adm.addRecord(n.clock(), n.adm.own); err != nil {
			n.log.Warn("this device's certificate is not valid here: peers will refuse it", "err", err)
		}
	}
	return nil
}

// admitPeer hands a newly connected peer our records, then gives it
// AdmissionTimeout to prove its own certificate (it arrives through
// handleAdmissionStream); a peer that does not is disconnected.
func (n *Node) admitPeer(ctx context.Context, p peer.ID) {
	if err := n.pushRecords(ctx, p); err != nil {
		n.log.Debug("admission push failed", "peer", p, "err", err)
	}
	d, err := identity.DeviceIDFromPeerID(p)
	t := time.NewTimer(n.cfg.AdmissionTimeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	if err == nil && n.adm.certified(n.clock(), d) {
		return
	}
	n.log.Info("disconnecting uncertified peer", "peer", p)
	_ = n.host.Network().ClosePeer(p)
}

func (n *Node) pushRecords(ctx context.Context, p peer.ID) error {
	recs, err := n.adm.records()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.DialTimeout)
	defer cancel()
	s, err := n.host.NewStream(ctx, p, AdmissionProtocol)
	if err != nil {
		return err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetWriteDeadline(dl)
	}
	w := bufio.NewWriter(s)
	for _, r := range recs {
		var l [2]byte
		binary.BigEndian.PutUint16(l[:], uint16(len(r)))
		w.Write(l[:])
		w.Write(r)
	}
	return w.Flush()
}

// handleAdmissionStream reads a peer's records: u16 length, then that many
// bytes, until EOF. Every record is verified before it is kept; a peer that
// sends garbage is scored as sending invalid certificates.
func (n *Node) handleAdmissionStream(s network.Stream) {
	defer s.Close()
	_ = s.SetReadDeadline(time.Now().Add(n.cfg.AdmissionTimeout))
	r := bufio.NewReader(s)
	from := s.Conn().RemotePeer()
	for i := 0; i < maxAdmissionRecords; i++ {
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return // EOF: done
		}
		size := int(binary.BigEndian.Uint16(l[:]))
		if size == 0 || size > maxRecordSize {
			n.rejectAdmission(from, fmt.Errorf("record of %d bytes", size))
			return
		}
		b := make([]byte, size)
		if _, err := io.ReadFull(r, b); err != nil {
			return
		}
		rec, err := n.applyRecord(b)
		if provablyBad(err) {
			n.rejectAdmission(from, err)
			return
		}
		if err == nil && rec.isNew {
			// Pass what a neighbour taught us to the whole mesh, so devices
			// that never meet still know each other's certificates.
			n.goIfRunning(func(ctx context.Context) { _ = n.admissionT.Publish(ctx, b) })
		}
		// Other failures (expired, revoked, another operator's) are skipped:
		// the sender may simply know more than we trust. A peer whose own
		// certificate is among them is cut off by admitPeer.
	}
}

func (n *Node) rejectAdmission(from peer.ID, err error) {
	n.log.Info("bad admission record", "peer", from, "err", err)
	n.penalise(antispam.PeerSubject(from), antispam.CertificateInvalid)
	_ = n.host.Network().ClosePeer(from)
}

// applyRecord keeps a verified record; a revocation also cuts the revoked
// device off at once.
func (n *Node) applyRecord(b []byte) (record, error) {
	rec, err := n.adm.addRecord(n.clock(), b)
	if err != nil {
		return rec, err
	}
	if d := rec.revoked; d != nil {
		if p, err := d.PeerID(); err == nil {
			n.log.Warn("device revoked", "device_id", d)
			_ = n.host.Network().ClosePeer(p)
		}
	}
	return rec, nil
}

// admissionValidator judges records gossiped on the admission topic.
func (n *Node) admissionValidator(_ context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
	b := m.GetData()
	if len(b) == 0 || len(b) > maxRecordSize {
		return pubsub.ValidationReject
	}
	if _, err := n.applyRecord(b); err != nil {
		if !provablyBad(err) {
			return pubsub.ValidationIgnore
		}
		if from != n.self {
			n.penalise(antispam.PeerSubject(from), antispam.CertificateInvalid)
		}
		return pubsub.ValidationReject
	}
	return pubsub.ValidationAccept
}

// provablyBad reports admission-record errors that no honest peer causes:
// bytes that do not decode, or a signature that does not verify. Expiry,
// revocation and untrusted operators depend on the receiver's clock and
// trust, so they only make the record useless, not its sender guilty.
func provablyBad(err error) bool {
	return errors.Is(err, identity.ErrCertMalformed) || errors.Is(err, identity.ErrCertBadSignature)
}

// Announce gossips an encoded certificate or revocation to the whole mesh
// (a revocation takes effect on every node as it arrives). The record is
// verified and applied locally first.
func (n *Node) Announce(ctx context.Context, rec []byte) error {
	n.mu.Lock()
	t, started := n.admissionT, n.started
	n.mu.Unlock()
	switch {
	case !started:
		return ErrNotStarted
	case t == nil:
		return errors.New("node: not a permissioned mesh (no Operators configured)")
	}
	if _, err := n.applyRecord(rec); err != nil {
		return err
	}
	return t.Publish(ctx, rec)
}

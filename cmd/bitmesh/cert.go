package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/internal/atomicfile"
	"github.com/bitmesh/bitmesh/node"
)

// runCert dispatches `bitmesh cert issue|revoke|show`.
func runCert(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" {
		fmt.Fprintln(stderr, "Usage: bitmesh cert issue|revoke|show [flags]\n\n"+
			"  issue   an operator signs a device certificate for a permissioned mesh\n"+
			"  revoke  an operator revokes a device; with --data, the running node gossips it\n"+
			"  show    print a certificate or revocation file as JSON")
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	switch args[0] {
	case "issue":
		return runCertIssue(args[1:], stdout, stderr)
	case "revoke":
		return runCertRevoke(ctx, args[1:], stdout, stderr)
	case "show":
		return runCertShow(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "bitmesh cert: unknown subcommand %q (want issue, revoke or show)\n", args[0])
	return errUsage
}

// operatorFlags name the operator's identity: an ordinary bitmesh data
// directory (make one with `bitmesh keygen --data DIR`).
type operatorFlags struct{ dataFlags }

func (o *operatorFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.dir, "operator-data", "", "the operator's data directory (its identity.key signs)")
	fs.StringVar(&o.passphraseFile, "passphrase-file", "", "file holding the operator key's passphrase (or set BITMESH_PASSPHRASE)")
}

func (o *operatorFlags) key() (*identity.PrivateKey, error) {
	if o.dir == "" {
		return nil, errors.New("--operator-data is required")
	}
	pass, err := o.passphrase()
	if err != nil {
		return nil, err
	}
	return identity.Load(identity.KeyPath(o.dir), pass)
}

func writeRecord(path string, b []byte) error {
	err := atomicfile.Create(path, b, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; refusing to overwrite it", path)
	}
	return err
}

func runCertIssue(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("cert issue", "cert issue --operator-data DIR --device ID --out FILE [--network NAME] [--role R]... [--valid-for D] [--serial N]", stderr)
	var op operatorFlags
	op.register(fs)
	device := fs.String("device", "", "the device ID (bmdev1…) to certify")
	out := fs.String("out", "", "file to write (install it as DATA/"+node.CertificateFileName+" on the device)")
	network := fs.String("network", node.DefaultNetwork, "network name the certificate is valid in")
	var roles stringList
	fs.Var(&roles, "role", "`role` to grant (repeatable), e.g. publish, gateway")
	validFor := fs.Duration("valid-for", 365*24*time.Hour, "validity from now")
	serial := fs.Uint64("serial", uint64(time.Now().Unix()), "serial number (revocations can name it)")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if op.dir == "" || *device == "" || *out == "" {
		return usagef(fs, "--operator-data, --device and --out are required")
	}
	d, err := identity.ParseDeviceID(*device)
	if err != nil {
		return usagef(fs, "--device: %v", err)
	}
	key, err := op.key()
	if err != nil {
		return err
	}
	now := time.Now()
	cert, err := identity.IssueCertificate(key, identity.Certificate{
		Network: *network, Device: d, Roles: roles, Serial: *serial,
		NotBefore: now.Add(-5 * time.Minute), // tolerate device clocks a little behind
		NotAfter:  now.Add(*validFor),
	})
	if err != nil {
		return err
	}
	b, err := cert.Encode()
	if err != nil {
		return err
	}
	if err := writeRecord(*out, b); err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(certJSON(cert))
}

func runCertRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("cert revoke", "cert revoke --operator-data DIR --device ID [--serial N] [--reason TEXT] [--network NAME] [--out FILE] [--data DIR] [--json]", stderr)
	var op operatorFlags
	op.register(fs)
	device := fs.String("device", "", "the device ID (bmdev1…) to revoke")
	serial := fs.Uint64("serial", 0, "revoke only this certificate serial (0: every certificate of the device)")
	reason := fs.String("reason", "", "why, carried in the revocation")
	network := fs.String("network", node.DefaultNetwork, "network name")
	out := fs.String("out", "", "also write the revocation to this file")
	announceVia := fs.String("data", "", "data directory of a running node of the mesh, which gossips the revocation")
	asJSON := fs.Bool("json", false, "print the revocation as JSON, as cert show does")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if op.dir == "" || *device == "" || (*out == "" && *announceVia == "") {
		return usagef(fs, "--operator-data, --device and at least one of --out or --data are required")
	}
	d, err := identity.ParseDeviceID(*device)
	if err != nil {
		return usagef(fs, "--device: %v", err)
	}
	key, err := op.key()
	if err != nil {
		return err
	}
	rev, err := identity.IssueRevocation(key, identity.Revocation{Network: *network, Device: d, Serial: *serial, Time: time.Now(), Reason: *reason})
	if err != nil {
		return err
	}
	b, err := rev.Encode()
	if err != nil {
		return err
	}
	if *out != "" {
		if err := writeRecord(*out, b); err != nil {
			return err
		}
	}
	if *announceVia != "" {
		c, err := dialNode(*announceVia)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.Announce(ctx, b); err != nil {
			return err
		}
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(revocationJSON(rev))
	}
	_, err = fmt.Fprintf(stdout, "revoked %s (serial %d)\n", d, *serial)
	return err
}

func runCertShow(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("cert show", "cert show FILE", stderr)
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	b, err := readRecord(pos[0])
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	if c, err := identity.DecodeCertificate(b); err == nil {
		return enc.Encode(certJSON(c))
	}
	r, err := identity.DecodeRevocation(b)
	if err != nil {
		return fmt.Errorf("%s is neither a certificate nor a revocation: %w", pos[0], err)
	}
	return enc.Encode(revocationJSON(r))
}

// readRecord reads a certificate or revocation file, refusing one larger
// than either can be rather than reading whatever it holds.
func readRecord(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	limit := max(identity.MaxCertificateSize, identity.MaxRevocationSize)
	b, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%s: larger than any certificate or revocation (%d bytes)", name, limit)
	}
	return b, nil
}

func revocationJSON(r identity.Revocation) map[string]any {
	return map[string]any{
		"kind": "revocation", "network": r.Network, "device": r.Device.String(), "operator": r.Operator.String(),
		"serial": r.Serial, "time": r.Time, "reason": r.Reason,
	}
}

func certJSON(c identity.Certificate) map[string]any {
	return map[string]any{
		"kind": "certificate", "network": c.Network, "device": c.Device.String(), "operator": c.Operator.String(),
		"roles": c.Roles, "serial": c.Serial, "not_before": c.NotBefore, "not_after": c.NotAfter,
	}
}

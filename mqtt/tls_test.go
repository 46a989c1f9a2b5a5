package mqtt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/internal/testwait"
)

// TestTLSListener: with TLSCert and TLSKey the broker speaks TLS only;
// mosquitto_pub gets through with the CA and not in clear.
func TestTLSListener(t *testing.T) {
	requireMosquitto(t)
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	g := startGateway(t, cfg, "", nil)
	_, port, _ := net.SplitHostPort(g.gw.Addr())
	if out, err := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", port, "--cafile", certFile, "-t", "sensors/t", "-m", "x", "-q", "1").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub over TLS: %v %s", err, out)
	}
	if out, err := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-t", "sensors/t", "-m", "clear", "-q", "1").CombinedOutput(); err == nil {
		t.Fatalf("a clear-text client got through: %s", out)
	}
	testwait.For(t, 5*time.Second, 10*time.Millisecond, func() error {
		if s := g.gw.Stats(); s[countBatchedMsgs] != 1 {
			return fmt.Errorf("stats %v", s)
		}
		return nil
	})
}

func selfSigned(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cf, kf
}

// TestQoS2: a QoS 2 publish gets PUBREC once its batch is durable, and
// the broker completes the exchange (PUBREL, PUBCOMP); mosquitto_pub
// exits 0 only then.
func TestQoS2(t *testing.T) {
	requireMosquitto(t)
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	g := startGateway(t, cfg, "", nil)
	_, port, _ := net.SplitHostPort(g.gw.Addr())
	for _, v := range []string{"mqttv311", "mqttv5"} {
		out, err := exec.Command("mosquitto_pub", "-V", v, "-p", port, "-t", "sensors/t", "-m", "q2", "-q", "2", "-d").CombinedOutput()
		if err != nil || !bytesContains(out, "received PUBCOMP") {
			t.Fatalf("%s: %v\n%s", v, err, out)
		}
	}
	// The counter follows the write the client already saw.
	testwait.For(t, 5*time.Second, 10*time.Millisecond, func() error {
		if s := g.gw.Stats(); s[countBatchedMsgs] != 2 || s[countAcked] != 2 {
			return fmt.Errorf("stats %v", s)
		}
		return nil
	})
}

func bytesContains(b []byte, s string) bool { return strings.Contains(string(b), s) }

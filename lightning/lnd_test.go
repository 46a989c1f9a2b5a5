package lightning_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/bitmesh/bitmesh/internal/testwait"
	"github.com/bitmesh/bitmesh/lightning"
)

// The integration test runs real btcd (simnet) and two real lnd nodes.
// Without the binaries it fails, telling how to install them (.ci/run
// does, with .ci/install-lnd).

func binary(t testing.TB, name, install string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("%s not found on PATH or in $(go env GOPATH)/bin: %s", name, install)
	return ""
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// simnet is btcd on simnet with two lnd nodes.
type simnet struct {
	t        testing.TB
	dir      string
	chain    *btcd // the lnd nodes' backend
	lncliBin string
}

// btcd is one btcd process on simnet.
type btcd struct {
	t        testing.TB
	dir      string
	rpc, p2p string
	cmd      *exec.Cmd
}

// startBtcd starts a btcd named name; with miningAddr it mines there, with
// connect it follows that btcd's P2P address.
func (s *simnet) startBtcd(name, miningAddr, connect string) *btcd {
	s.t.Helper()
	b := &btcd{t: s.t, dir: filepath.Join(s.dir, name), rpc: freePort(s.t), p2p: freePort(s.t)}
	args := []string{"--simnet", "--datadir=" + filepath.Join(b.dir, "data"), "--logdir=" + filepath.Join(b.dir, "logs"),
		"--rpclisten=" + b.rpc, "--rpcuser=bitmesh", "--rpcpass=bitmesh", "--listen=" + b.p2p,
		"--rpccert=" + filepath.Join(b.dir, "rpc.cert"), "--rpckey=" + filepath.Join(b.dir, "rpc.key"), "--txindex",
		"--trickleinterval=50ms"} // relay transactions to the miner at once
	if miningAddr != "" {
		args = append(args, "--miningaddr="+miningAddr)
	}
	if connect != "" {
		args = append(args, "--connect="+connect)
	}
	log, err := os.Create(filepath.Join(s.dir, name+".log"))
	if err != nil {
		s.t.Fatal(err)
	}
	b.cmd = exec.Command(binary(s.t, "btcd", "go install github.com/btcsuite/btcd@v0.24.2"), args...)
	b.cmd.Stdout, b.cmd.Stderr = log, log
	if err := b.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() {
		b.cmd.Process.Kill()
		b.cmd.Wait()
		log.Close()
	})
	waitFor(s.t, 30*time.Second, name+"'s RPC", func() error {
		_, err := os.Stat(filepath.Join(b.dir, "rpc.cert"))
		if err == nil {
			var c net.Conn
			if c, err = net.Dial("tcp", b.rpc); err == nil {
				c.Close()
			}
		}
		return err
	})
	return b
}

func (b *btcd) ctl(args ...string) ([]byte, error) {
	base := []string{"--simnet", "--rpcserver=" + b.rpc, "--rpcuser=bitmesh", "--rpcpass=bitmesh", "--rpccert=" + filepath.Join(b.dir, "rpc.cert")}
	out, err := exec.Command(binary(b.t, "btcctl", "go install github.com/btcsuite/btcd/cmd/btcctl@v0.24.2"), append(base, args...)...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("btcctl %v: %v: %s", args, err, out)
	}
	return out, nil
}

// lnd is one lnd node of the simnet.
type lnd struct {
	s              *simnet
	name, dir      string
	rpc, rest, p2p string
	cmd            *exec.Cmd
}

func (s *simnet) startLnd(name string) *lnd {
	s.t.Helper()
	l := &lnd{s: s, name: name, dir: filepath.Join(s.dir, name), rpc: freePort(s.t), rest: freePort(s.t), p2p: freePort(s.t)}
	log, err := os.Create(filepath.Join(s.dir, name+".log"))
	if err != nil {
		s.t.Fatal(err)
	}
	l.cmd = exec.Command(binary(s.t, "lnd", "bash .ci/install-lnd"),
		"--lnddir="+l.dir, "--noseedbackup", "--bitcoin.simnet", "--bitcoin.node=btcd",
		"--btcd.rpchost="+s.chain.rpc, "--btcd.rpcuser=bitmesh", "--btcd.rpcpass=bitmesh", "--btcd.rpccert="+filepath.Join(s.chain.dir, "rpc.cert"),
		"--rpclisten="+l.rpc, "--restlisten="+l.rest, "--listen="+l.p2p, "--trickledelay=50", "--debuglevel=info",
		"--alias="+name)
	l.cmd.Stdout, l.cmd.Stderr = log, log
	if err := l.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() {
		l.cmd.Process.Kill()
		l.cmd.Wait()
		log.Close()
	})
	waitFor(s.t, 90*time.Second, name+"'s RPC", func() error {
		_, err := l.cliErr("getinfo")
		return err
	})
	return l
}

func (l *lnd) cliErr(args ...string) ([]byte, error) {
	base := []string{"--lnddir=" + l.dir, "--rpcserver=" + l.rpc, "--network=simnet"}
	out, err := exec.Command(l.s.lncliBin, append(base, args...)...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("lncli %s %v: %v: %s", l.name, args, err, out)
	}
	return out, nil
}

func (l *lnd) cli(v any, args ...string) {
	l.s.t.Helper()
	out, err := l.cliErr(args...)
	if err != nil {
		l.s.t.Fatal(err)
	}
	if v != nil {
		if err := json.Unmarshal(out, v); err != nil {
			l.s.t.Fatalf("lncli %s %v: %v: %s", l.name, args, err, out)
		}
	}
}

func (l *lnd) backend(t testing.TB) *lightning.Lnd {
	t.Helper()
	b, err := lightning.NewLnd(lightning.LndConfig{Host: l.rest, TLSCertPath: filepath.Join(l.dir, "tls.cert"),
		MacaroonPath: filepath.Join(l.dir, "data", "chain", "bitcoin", "simnet", "admin.macaroon")})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func waitFor(t testing.TB, total time.Duration, what string, f func() error) {
	t.Helper()
	testwait.For(t, total, 200*time.Millisecond, func() error {
		if err := f(); err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		return nil
	})
}

// newSimnet starts btcd and two lnd nodes, funds the first from mined
// coins, and opens a 1,000,000-sat channel from it to the second.
func newSimnet(t testing.TB) (buyer, seller *lnd) {
	t.Helper()
	s := &simnet{t: t, dir: t.TempDir()}
	s.lncliBin = binary(t, "lncli", "bash .ci/install-lnd")
	s.chain = s.startBtcd("btcd", "", "")
	t.Cleanup(func() { // after the lnd nodes stop: show why a failed run failed
		if t.Failed() {
			for _, name := range []string{"btcd.log", "miner.log", "buyer.log", "seller.log"} {
				b, _ := os.ReadFile(filepath.Join(s.dir, name))
				t.Logf("last of %s:\n%s", name, b[max(0, len(b)-3000):])
			}
		}
	})
	buyer, seller = s.startLnd("buyer"), s.startLnd("seller")

	// btcd mines only to a fixed address: a second btcd, following the
	// first, mines to the buyer's, so the lnd nodes' backend never restarts.
	var addr struct{ Address string }
	buyer.cli(&addr, "newaddress", "p2wkh")
	miner := s.startBtcd("miner", addr.Address, s.chain.p2p)
	generate := func(n int) {
		t.Helper()
		if out, err := miner.ctl("generate", fmt.Sprint(n)); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	generate(400) // mature coinbases, segwit active
	waitFor(t, 120*time.Second, "the buyer's funds", func() error {
		var bal struct {
			ConfirmedBalance string `json:"confirmed_balance"`
		}
		out, err := buyer.cliErr("walletbalance")
		if err == nil {
			err = json.Unmarshal(out, &bal)
		}
		if err == nil && (bal.ConfirmedBalance == "" || bal.ConfirmedBalance == "0") {
			err = fmt.Errorf("balance %q", bal.ConfirmedBalance)
		}
		return err
	})
	var info struct {
		IdentityPubkey string `json:"identity_pubkey"`
	}
	seller.cli(&info, "getinfo")
	waitFor(t, 60*time.Second, "the buyer's lnd to connect to the seller's", func() error {
		out, err := buyer.cliErr("connect", info.IdentityPubkey+"@"+seller.p2p)
		if err != nil && strings.Contains(string(out), "already connected") {
			return nil
		}
		return err
	})
	waitFor(t, 60*time.Second, "the channel to open", func() error {
		_, err := buyer.cliErr("openchannel", "--node_key="+info.IdentityPubkey, "--local_amt=1000000")
		return err
	})
	waitFor(t, 30*time.Second, "the funding transaction at the miner", func() error {
		out, err := miner.ctl("getrawmempool")
		if err == nil && !strings.Contains(string(out), `"`) {
			err = fmt.Errorf("mempool %s", bytes.TrimSpace(out))
		}
		return err
	})
	generate(10)
	waitFor(t, 120*time.Second, "the channel to be active on both sides", func() error {
		for _, n := range []*lnd{buyer, seller} {
			var ch struct{ Channels []struct{ Active bool } }
			out, err := n.cliErr("listchannels")
			if err == nil {
				err = json.Unmarshal(out, &ch)
			}
			if err == nil && (len(ch.Channels) != 1 || !ch.Channels[0].Active) {
				err = fmt.Errorf("%s: channels %+v", n.name, ch.Channels)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	// Active is not yet usable: lnd's link may still refuse with
	// insufficient balance. Ready means a first payment goes through.
	sb, bb := seller.backend(t), buyer.backend(t)
	waitFor(t, 60*time.Second, "a first payment over the channel", func() error {
		ctx := context.Background()
		inv, err := sb.AddInvoice(ctx, 1000, "warm-up", time.Hour)
		if err == nil {
			_, err = bb.Pay(ctx, inv.PaymentRequest, 1000)
		}
		return err
	})
	return buyer, seller
}

// TestBuyThroughLnd: the vending sale of TestVending, paid for real:
// btcd on simnet, two lnd nodes with a channel between them, a bitmesh
// seller creating invoices on one and a bitmesh buyer paying from the
// other. The seller checks the credential without asking lnd, meters
// the units, and logs the sale with a receipt that verifies offline.
func TestBuyThroughLnd(t *testing.T) {
	buyer, seller := newSimnet(t)
	sn, cn, sl, cl, logs := vendingPair(t, seller.backend(t), buyer.backend(t))
	vend(t, sn, cn, sl, cl, logs)
	// lnd saw the invoice settled: the preimage the seller checked is the
	// one lnd released.
	var invs struct {
		Invoices []struct {
			State       string `json:"state"`
			AmtPaidMsat string `json:"amt_paid_msat"`
		} `json:"invoices"`
	}
	seller.cli(&invs, "listinvoices")
	// Besides newSimnet's warm-up invoices, one was paid: the sodas'.
	sodas := 0
	for _, inv := range invs.Invoices {
		if inv.State == "SETTLED" && inv.AmtPaidMsat == "6000" {
			sodas++
		}
	}
	if sodas != 1 {
		t.Fatalf("seller's lnd invoices: %+v; want one settled for 6000 msat", invs.Invoices)
	}
}

// BenchmarkLndRoundTrip measures, on the simnet of TestBuyThroughLnd, one
// bare lnd payment (the seller's lnd creates an invoice, the buyer's pays
// it, over their REST APIs) against bitmesh's whole purchase of one unit
// (services, challenge, the buyer's checks, the same payment, then the
// use: the seller's credential check, metering and service), side by side
// in one run:
//
//	go test ./lightning -run '^$' -bench LndRoundTrip -benchtime 20x
func BenchmarkLndRoundTrip(b *testing.B) {
	buyer, seller := newSimnet(b)
	sb, bb := seller.backend(b), buyer.backend(b)
	b.Run("bare-lnd-payment", func(b *testing.B) {
		ctx := context.Background()
		for b.Loop() {
			inv, err := sb.AddInvoice(ctx, 2000, "bench", time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := bb.Pay(ctx, inv.PaymentRequest, 1000); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bitmesh-buy-and-use", func(b *testing.B) {
		// One challenge per purchase, as fast as they go: no rate limit.
		sn, _, _, cl, _ := vendingPair(b, sb, bb, func(c *lightning.Config) { c.ChallengeRate, c.ChallengeRateTotal = rate.Inf, rate.Inf })
		ctx := context.Background()
		for b.Loop() {
			cred, err := cl.Buy(ctx, sn.PeerID(), "soda", 1)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := cl.Use(ctx, cred, 1, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

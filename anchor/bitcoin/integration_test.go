package bitcoin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg"

	"github.com/bitmesh/bitmesh/anchor"
)

// btcdBinary finds btcd on PATH or in GOPATH/bin. The Bitcoin tests run a
// real btcd: without one they fail, telling how to install it.
func btcdBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("btcd"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "btcd")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("btcd not found on PATH or in $(go env GOPATH)/bin: install it with " +
		"`go install github.com/btcsuite/btcd@v0.24.2` (.ci/run does)")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startBtcd runs btcd on simnet on loopback, mining to miningAddr, with the
// indexes Anchorer needs, and returns its RPC URL.
func startBtcd(t *testing.T, miningAddr string) string {
	t.Helper()
	dir := t.TempDir()
	rpc := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(btcdBinary(t), "--simnet", "--datadir="+filepath.Join(dir, "data"), "--logdir="+filepath.Join(dir, "logs"),
		"--rpclisten="+rpc, "--rpcuser=bitmesh", "--rpcpass=bitmesh", "--notls",
		fmt.Sprintf("--listen=127.0.0.1:%d", freePort(t)), "--miningaddr="+miningAddr, "--txindex", "--addrindex")
	out, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		out.Close()
	})
	return "http://" + rpc
}

func TestAnchorOnSimnet(t *testing.T) {
	key, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAnchorer(Config{RPCUser: "bitmesh", RPCPass: "bitmesh", Net: &chaincfg.SimNetParams, Key: key, RPCURL: "http://placeholder"})
	if err != nil {
		t.Fatal(err)
	}
	a.cfg.RPCURL = startBtcd(t, a.Address().EncodeAddress())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Wait for the RPC server, then mature one coinbase (100 blocks).
	deadline := time.Now().Add(30 * time.Second)
	for {
		var height int64
		err := a.call(ctx, "getblockcount", nil, &height)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("btcd RPC not up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	generate := func(n int) {
		t.Helper()
		if err := a.call(ctx, "generate", []any{n}, nil); err != nil {
			t.Fatal(err)
		}
	}
	generate(101)

	for round, c := range []anchor.Checkpoint{
		{Origin: "bitmesh/simnet/topic", Size: 3, Root: [32]byte{3}},
		{Origin: "bitmesh/simnet/topic", Size: 9, Root: [32]byte{9}}, // spends the first anchor's change
	} {
		p, err := a.Anchor(ctx, c)
		if err != nil {
			t.Fatalf("round %d: anchor: %v", round, err)
		}
		if !p.Pending || p.Digest != anchor.AnchorDigest(c) {
			t.Fatalf("round %d: fresh proof pending=%v digest=%x", round, p.Pending, p.Digest)
		}
		if _, err := anchor.VerifyAnchor(p); !errors.Is(err, anchor.ErrAnchorPending) {
			t.Fatalf("round %d: pending proof verifies as %v", round, err)
		}
		if _, err := a.Upgrade(ctx, p); !errors.Is(err, anchor.ErrAnchorPending) {
			t.Fatalf("round %d: upgrade before mining: %v", round, err)
		}
		generate(1)
		done, err := a.Upgrade(ctx, p)
		if err != nil {
			t.Fatalf("round %d: upgrade: %v", round, err)
		}
		at, err := anchor.VerifyAnchor(done)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		var best string
		if err := a.call(ctx, "getbestblockhash", nil, &best); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprintf("%x", at.BlockHash) != best || at.BlockHeight != int64(102+round) {
			t.Fatalf("round %d: attested block %x at %d, best is %s", round, at.BlockHash, at.BlockHeight, best)
		}
		if round == 0 {
			checkBitcoinProofTampering(t, done)
			if os.Getenv("BITMESH_WRITE_BITCOIN_VECTOR") != "" {
				writeBitcoinVector(t, c, done, at)
			}
		}
	}
}

// checkBitcoinProofTampering changes each part of a valid proof in turn.
func checkBitcoinProofTampering(t *testing.T, good anchor.AnchorProof) {
	p, err := decodeBitcoinProof(good.Proof)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte, i int) []byte { c := append([]byte(nil), b...); c[i] ^= 1; return c }
	with := func(edit func(*bitcoinProof)) []byte {
		q := p
		q.branch = append(q.branch[:0:0], p.branch...)
		q.tx = append([]byte(nil), p.tx...)
		edit(&q)
		return q.encode()
	}
	enc := good.Proof
	for _, tc := range []struct {
		name   string
		digest [32]byte
		proof  []byte
	}{
		{"other digest", [32]byte{1}, enc},
		{"transaction byte", good.Digest, with(func(q *bitcoinProof) { q.tx = flip(q.tx, len(q.tx)-5) })},
		{"branch hash", good.Digest, with(func(q *bitcoinProof) { q.branch[0][0] ^= 1 })},
		{"branch dropped", good.Digest, with(func(q *bitcoinProof) { q.branch = nil })},
		{"index", good.Digest, with(func(q *bitcoinProof) { q.txIndex ^= 1 })},
		{"index beyond branch", good.Digest, with(func(q *bitcoinProof) { q.txIndex |= 1 << 8 })},
		{"header merkle root", good.Digest, with(func(q *bitcoinProof) { q.header[36+3] ^= 1 })},
		{"header bits (harder target)", good.Digest, with(func(q *bitcoinProof) { copy(q.header[72:76], []byte{0x01, 0x00, 0x00, 0x1d}) })},
		{"64-byte transaction", good.Digest, with(func(q *bitcoinProof) { q.tx = make([]byte, 64) })},
		{"truncated", good.Digest, enc[:len(enc)-1]},
		{"unknown version", good.Digest, append([]byte{7}, enc[1:]...)},
		{"pending length", good.Digest, []byte{0, 1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := anchor.VerifyAnchor(anchor.AnchorProof{Kind: anchor.KindBitcoinOpReturn, Digest: tc.digest, Proof: tc.proof})
			if !errors.Is(err, anchor.ErrAnchorInvalid) {
				t.Fatalf("err = %v, want anchor.ErrAnchorInvalid", err)
			}
		})
	}
}

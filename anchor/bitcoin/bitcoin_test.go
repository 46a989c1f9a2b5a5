package bitcoin

import (
	"errors"
	"testing"

	"github.com/btcsuite/btcd/blockchain"
	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/bitmesh/bitmesh/anchor"
)

// TestMerkleBranchMatchesBtcd folds every transaction's branch and compares
// the root with btcd's own Merkle tree, for odd and even block sizes.
func TestMerkleBranchMatchesBtcd(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 5, 7, 8, 13, 64, 100} {
		var txs []*btcutil.Tx
		var txids []chainhash.Hash
		for i := range n {
			tx := wire.NewMsgTx(2)
			tx.AddTxOut(wire.NewTxOut(int64(i), []byte{byte(i), byte(n)}))
			txs = append(txs, btcutil.NewTx(tx))
			txids = append(txids, tx.TxHash())
		}
		root := blockchain.CalcMerkleRoot(txs, false)
		for i := range n {
			if got := foldBranch(txids[i], uint32(i), merkleBranch(txids, i)); got != root {
				t.Fatalf("%d txs, tx %d: branch leads to %s, btcd root %s", n, i, got, root)
			}
		}
	}
}

func TestOpReturnScriptFitsRelayPolicy(t *testing.T) {
	s := OpReturnScript([32]byte{1})
	if len(s)-2 != opReturnPayloadSize || len(s) > 83 { // 80 data bytes + opcodes
		t.Fatalf("OP_RETURN script of %d bytes", len(s))
	}
	if string(s[2:6]) != "BMCK" || s[6] != opReturnVersion {
		t.Fatalf("script %x does not start with the tag and version", s)
	}
}

func FuzzDecodeBitcoinProof(f *testing.F) {
	f.Add(bitcoinProof{pending: true}.encode())
	f.Add(bitcoinProof{branch: make([]chainhash.Hash, 2), tx: make([]byte, 100)}.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeBitcoinProof(b)
		if err != nil {
			if !errors.Is(err, anchor.ErrAnchorInvalid) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if got := p.encode(); string(got) != string(b) {
			t.Fatalf("decoded proof re-encodes differently")
		}
		if _, err := anchor.VerifyAnchor(anchor.AnchorProof{Kind: anchor.KindBitcoinOpReturn, Proof: b}); err == nil && p.pending {
			t.Fatal("a pending proof verified")
		}
	})
}

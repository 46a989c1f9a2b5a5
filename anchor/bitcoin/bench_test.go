package bitcoin

import (
	"bytes"
	"testing"
	"time"

	"github.com/btcsuite/btcd/blockchain"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/bitmesh/bitmesh/anchor"
)

// syntheticBitcoinProof builds a complete proof for digest: an anchor
// transaction among 2000 others in a block mined at regtest difficulty.
func syntheticBitcoinProof(b *testing.B, digest [32]byte) anchor.AnchorProof {
	var txids []chainhash.Hash
	var anchorTx *wire.MsgTx
	for i := range 2000 {
		tx := wire.NewMsgTx(2)
		tx.AddTxIn(wire.NewTxIn(&wire.OutPoint{Index: uint32(i)}, []byte{1, 2, 3}, nil))
		tx.AddTxOut(wire.NewTxOut(1000, []byte{0x51}))
		if i == 1234 {
			tx.AddTxOut(wire.NewTxOut(0, OpReturnScript(digest)))
			anchorTx = tx
		}
		txids = append(txids, tx.TxHash())
	}
	hdr := wire.BlockHeader{Version: 4, Timestamp: time.Unix(1700000000, 0), Bits: 0x207fffff}
	hdr.MerkleRoot = foldBranch(txids[1234], 1234, merkleBranch(txids, 1234))
	for {
		h := hdr.BlockHash()
		if blockchain.HashToBig(&h).Cmp(blockchain.CompactToBig(hdr.Bits)) <= 0 {
			break
		}
		hdr.Nonce++
	}
	p := bitcoinProof{height: 99, txIndex: 1234, branch: merkleBranch(txids, 1234)}
	var hb, tb bytes.Buffer
	hdr.Serialize(&hb)
	copy(p.header[:], hb.Bytes())
	anchorTx.SerializeNoWitness(&tb)
	p.tx = tb.Bytes()
	return anchor.AnchorProof{Kind: anchor.KindBitcoinOpReturn, Digest: digest, Proof: p.encode()}
}

func BenchmarkVerifyBitcoinAnchor(b *testing.B) {
	p := syntheticBitcoinProof(b, [32]byte{42})
	if _, err := anchor.VerifyAnchor(p); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := anchor.VerifyAnchor(p); err != nil {
			b.Fatal(err)
		}
	}
}

package bitcoin

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/btcsuite/btcd/blockchain"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"

	"github.com/bitmesh/bitmesh/anchor"
)

// The OP_RETURN commitment: a 4-byte tag, a version byte and the anchor
// digest, 37 bytes in one direct push (PROTOCOL.md §18.1). Standard relay
// policy allows 80 bytes of OP_RETURN data.
var opReturnTag = [4]byte{'B', 'M', 'C', 'K'}

const (
	opReturnVersion     = 1
	opReturnPayloadSize = len(opReturnTag) + 1 + 32

	// Bitcoin proof encoding (PROTOCOL.md §18.2).
	btcProofPending  = 0
	btcProofComplete = 1
	btcHeaderSize    = 80
	// maxBranch: a block of 2^32 transactions is far beyond any block.
	maxBranch = 32
	// maxAnchorTxSize bounds the transaction in a proof; an anchor
	// transaction is a few hundred bytes.
	maxAnchorTxSize = 16 << 10
)

// OpReturnScript is the output script committing digest: OP_RETURN and one
// push of tag ‖ version ‖ digest.
func OpReturnScript(digest [32]byte) []byte {
	s := []byte{txscript.OP_RETURN, byte(opReturnPayloadSize)}
	s = append(s, opReturnTag[:]...)
	s = append(s, opReturnVersion)
	return append(s, digest[:]...)
}

// bitcoinProof is a decoded anchor.KindBitcoinOpReturn proof.
type bitcoinProof struct {
	pending bool
	txid    chainhash.Hash // pending: the broadcast transaction

	height  uint32
	header  [btcHeaderSize]byte
	txIndex uint32
	branch  []chainhash.Hash
	tx      []byte
}

// encode: pending is 0x00 ‖ txid (internal byte order); complete is 0x01 ‖
// height (u32) ‖ 80-byte header ‖ tx index (u32) ‖ branch length (u8) ‖
// branch hashes ‖ tx length (u32) ‖ serialized tx, integers big-endian.
func (p bitcoinProof) encode() []byte {
	if p.pending {
		return append([]byte{btcProofPending}, p.txid[:]...)
	}
	b := []byte{btcProofComplete}
	b = binary.BigEndian.AppendUint32(b, p.height)
	b = append(b, p.header[:]...)
	b = binary.BigEndian.AppendUint32(b, p.txIndex)
	b = append(b, byte(len(p.branch)))
	for _, h := range p.branch {
		b = append(b, h[:]...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(p.tx)))
	return append(b, p.tx...)
}

func decodeBitcoinProof(b []byte) (bitcoinProof, error) {
	bad := func(what string) (bitcoinProof, error) {
		return bitcoinProof{}, fmt.Errorf("%w: bitcoin proof: %s", anchor.ErrAnchorInvalid, what)
	}
	if len(b) == 0 {
		return bad("empty")
	}
	var p bitcoinProof
	switch b[0] {
	case btcProofPending:
		if len(b) != 1+32 {
			return bad("pending proof is not 33 bytes")
		}
		p.pending = true
		copy(p.txid[:], b[1:])
		return p, nil
	case btcProofComplete:
	default:
		return bad(fmt.Sprintf("unknown version %d", b[0]))
	}
	r := b[1:]
	if len(r) < 4+btcHeaderSize+4+1 {
		return bad("truncated")
	}
	p.height = binary.BigEndian.Uint32(r)
	copy(p.header[:], r[4:])
	p.txIndex = binary.BigEndian.Uint32(r[4+btcHeaderSize:])
	n := int(r[4+btcHeaderSize+4])
	r = r[4+btcHeaderSize+4+1:]
	if n > maxBranch {
		return bad(fmt.Sprintf("branch of %d hashes", n))
	}
	if len(r) < n*32+4 {
		return bad("truncated branch")
	}
	p.branch = make([]chainhash.Hash, n)
	for i := range p.branch {
		copy(p.branch[i][:], r[i*32:])
	}
	r = r[n*32:]
	txLen := binary.BigEndian.Uint32(r)
	r = r[4:]
	if txLen > maxAnchorTxSize || int(txLen) != len(r) {
		return bad(fmt.Sprintf("transaction length %d with %d bytes left", txLen, len(r)))
	}
	p.tx = r
	return p, nil
}

// Importing this package makes anchor.VerifyAnchor, and so
// anchor.VerifyReceipt, check proofs of kind anchor.KindBitcoinOpReturn.
func init() { anchor.RegisterAnchorKind(anchor.KindBitcoinOpReturn, verifyAnchor) }

// verifyAnchor checks an anchor.KindBitcoinOpReturn proof offline: the
// transaction commits a.Digest in an OP_RETURN output, its Merkle branch
// leads to the header's Merkle root, and the header's hash meets the
// target its own bits state. Whether that header is in the best chain is
// for the caller to check against a node it trusts.
func verifyAnchor(a anchor.AnchorProof) (anchor.AnchorAttestation, error) {
	p, err := decodeBitcoinProof(a.Proof)
	if err != nil {
		return anchor.AnchorAttestation{}, err
	}
	if p.pending {
		return anchor.AnchorAttestation{}, fmt.Errorf("%w: transaction %s not yet in a block", anchor.ErrAnchorPending, p.txid)
	}
	// A 64-byte transaction can be mistaken for an inner Merkle node (its
	// two halves for two child hashes), so a branch could "prove" a
	// transaction that is not one. Real anchor transactions are larger.
	if len(p.tx) == 64 {
		return anchor.AnchorAttestation{}, fmt.Errorf("%w: 64-byte transaction", anchor.ErrAnchorInvalid)
	}
	var tx wire.MsgTx
	rd := bytes.NewReader(p.tx)
	if err := tx.Deserialize(rd); err != nil || rd.Len() != 0 {
		return anchor.AnchorAttestation{}, fmt.Errorf("%w: transaction does not parse (%v, %d bytes left)", anchor.ErrAnchorInvalid, err, rd.Len())
	}
	want := OpReturnScript(a.Digest)
	found := false
	for _, out := range tx.TxOut {
		if bytes.Equal(out.PkScript, want) {
			found = true
			break
		}
	}
	if !found {
		return anchor.AnchorAttestation{}, fmt.Errorf("%w: no OP_RETURN output commits digest %x", anchor.ErrAnchorInvalid, a.Digest)
	}
	var hdr wire.BlockHeader
	if err := hdr.Deserialize(bytes.NewReader(p.header[:])); err != nil {
		return anchor.AnchorAttestation{}, fmt.Errorf("%w: header: %v", anchor.ErrAnchorInvalid, err)
	}
	if len(p.branch) < 32 && p.txIndex>>uint(len(p.branch)) != 0 {
		return anchor.AnchorAttestation{}, fmt.Errorf("%w: index %d beyond a branch of %d", anchor.ErrAnchorInvalid, p.txIndex, len(p.branch))
	}
	root := foldBranch(tx.TxHash(), p.txIndex, p.branch)
	if root != hdr.MerkleRoot {
		return anchor.AnchorAttestation{}, fmt.Errorf("%w: branch leads to %s, header commits %s", anchor.ErrAnchorInvalid, root, hdr.MerkleRoot)
	}
	target := blockchain.CompactToBig(hdr.Bits)
	hash := hdr.BlockHash()
	if target.Sign() <= 0 || blockchain.HashToBig(&hash).Cmp(target) > 0 {
		return anchor.AnchorAttestation{}, fmt.Errorf("%w: header %s does not meet its target %08x", anchor.ErrAnchorInvalid, hash, hdr.Bits)
	}
	at := anchor.AnchorAttestation{
		Kind:        anchor.KindBitcoinOpReturn,
		Digest:      a.Digest,
		BlockHeight: int64(p.height),
		MerkleRoot:  hdr.MerkleRoot,
		BlockTime:   hdr.Timestamp.UTC(),
		Bits:        hdr.Bits,
	}
	for i := range hash { // display order is byte-reversed
		at.BlockHash[i] = hash[len(hash)-1-i]
	}
	return at, nil
}

// foldBranch hashes txid up a Merkle branch: bit i of index says whether
// the node at level i is a right child.
func foldBranch(txid chainhash.Hash, index uint32, branch []chainhash.Hash) chainhash.Hash {
	h := txid
	var buf [64]byte
	for i, sib := range branch {
		if index>>uint(i)&1 == 1 {
			copy(buf[:32], sib[:])
			copy(buf[32:], h[:])
		} else {
			copy(buf[:32], h[:])
			copy(buf[32:], sib[:])
		}
		first := sha256.Sum256(buf[:])
		h = sha256.Sum256(first[:])
	}
	return h
}

// merkleBranch returns the branch of the transaction at index among a
// block's txids, Bitcoin style (an odd level repeats its last hash).
func merkleBranch(txids []chainhash.Hash, index int) []chainhash.Hash {
	var branch []chainhash.Hash
	level := append([]chainhash.Hash(nil), txids...)
	for len(level) > 1 {
		if len(level)%2 == 1 {
			level = append(level, level[len(level)-1])
		}
		branch = append(branch, level[index^1])
		next := make([]chainhash.Hash, len(level)/2)
		for i := range next {
			next[i] = chainhash.DoubleHashH(append(level[2*i][:], level[2*i+1][:]...))
		}
		level, index = next, index/2
	}
	return branch
}

package bitcoin

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"

	"github.com/bitmesh/bitmesh/anchor"
)

// Config configures a Anchorer.
type Config struct {
	// RPCURL is the node's JSON-RPC endpoint, e.g. http://127.0.0.1:18556
	// for a btcd on simnet started with --notls on loopback. Use https
	// with HTTPClient trusting the node's certificate elsewhere.
	RPCURL           string
	RPCUser, RPCPass string
	// HTTPClient makes the RPC calls; nil means a client with no timeout
	// of its own (every call is bounded by its context).
	HTTPClient *http.Client
	// Net selects address encoding and must match the node's chain.
	Net *chaincfg.Params
	// Key funds the anchor transactions from the P2PKH address it
	// controls (Address). Keep only small amounts there.
	Key *btcec.PrivateKey
	// FeeRate in satoshi per byte. An anchor transaction is about 240
	// bytes.
	FeeRate int64
	// MinConfirmations a transaction needs before Upgrade completes its
	// proof. More survives reorganisations; 1 is enough on simnet.
	MinConfirmations int64
}

// Anchorer commits checkpoint digests in OP_RETURN outputs through
// a Bitcoin node's JSON-RPC. It finds its coins with searchrawtransactions
// and gettxout, so the node must keep an address index (btcd --txindex
// --addrindex). Safe for concurrent access; anchors are sent one at a
// time.
type Anchorer struct {
	cfg    Config
	addr   btcutil.Address
	script []byte // the funding address's output script

	mu    sync.Mutex             // serialises spends
	spent map[wire.OutPoint]bool // spent by us, maybe not yet mined
}

var _ anchor.Anchorer = (*Anchorer)(nil)

// NewAnchorer checks cfg and derives the funding address.
func NewAnchorer(cfg Config) (*Anchorer, error) {
	if cfg.RPCURL == "" || cfg.Net == nil || cfg.Key == nil {
		return nil, fmt.Errorf("%w: RPCURL, Net and Key are required", ErrConfig)
	}
	if cfg.FeeRate <= 0 {
		cfg.FeeRate = 2
	}
	if cfg.MinConfirmations <= 0 {
		cfg.MinConfirmations = 1
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	addr, err := btcutil.NewAddressPubKeyHash(btcutil.Hash160(cfg.Key.PubKey().SerializeCompressed()), cfg.Net)
	if err != nil {
		return nil, fmt.Errorf("%w: funding address: %w", ErrConfig, err)
	}
	script, err := txscript.PayToAddrScript(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: funding script: %w", ErrConfig, err)
	}
	return &Anchorer{cfg: cfg, addr: addr, script: script, spent: make(map[wire.OutPoint]bool)}, nil
}

// Address is where to send coins that pay for anchors.
func (b *Anchorer) Address() btcutil.Address { return b.addr }

// Kind implements anchor.Anchorer.
func (b *Anchorer) Kind() string { return anchor.KindBitcoinOpReturn }

// Anchor spends one confirmed coin of the funding address into an
// OP_RETURN output committing anchor.AnchorDigest(c) and change back to the
// address, broadcasts it, and returns a pending proof naming the
// transaction.
func (b *Anchorer) Anchor(ctx context.Context, c anchor.Checkpoint) (anchor.AnchorProof, error) {
	digest := anchor.AnchorDigest(c)
	b.mu.Lock()
	defer b.mu.Unlock()
	tx := wire.NewMsgTx(2)
	tx.AddTxOut(wire.NewTxOut(0, OpReturnScript(digest)))
	tx.AddTxOut(wire.NewTxOut(0, b.script)) // change; value set below
	// One input, two outputs: ~10 + 148 + 9+38 + 34 bytes.
	fee := b.cfg.FeeRate * 240
	coin, value, err := b.findCoin(ctx, fee+546)
	if err != nil {
		return anchor.AnchorProof{}, err
	}
	tx.AddTxIn(wire.NewTxIn(&coin, nil, nil))
	tx.TxOut[1].Value = value - fee
	sig, err := txscript.SignatureScript(tx, 0, b.script, txscript.SigHashAll, b.cfg.Key, true)
	if err != nil {
		return anchor.AnchorProof{}, fmt.Errorf("bitcoin: signing: %w", err)
	}
	tx.TxIn[0].SignatureScript = sig
	var raw bytes.Buffer
	if err := tx.Serialize(&raw); err != nil {
		return anchor.AnchorProof{}, err
	}
	var txid string
	if err := b.call(ctx, "sendrawtransaction", []any{hex.EncodeToString(raw.Bytes())}, &txid); err != nil {
		return anchor.AnchorProof{}, err
	}
	b.spent[coin] = true
	p := bitcoinProof{pending: true, txid: tx.TxHash()}
	return anchor.AnchorProof{Kind: anchor.KindBitcoinOpReturn, Digest: digest, Pending: true, Proof: p.encode()}, nil
}

// findCoin returns an unspent output of the funding address worth at
// least min, confirmed (coinbase outputs: mature). Callers hold b.mu.
func (b *Anchorer) findCoin(ctx context.Context, min int64) (wire.OutPoint, int64, error) {
	var txs []struct {
		Txid string `json:"txid"`
		Vout []struct {
			Value        float64 `json:"value"`
			N            uint32  `json:"n"`
			ScriptPubKey struct {
				Hex string `json:"hex"`
			} `json:"scriptPubKey"`
		} `json:"vout"`
	}
	// Newest first, at most 100: a gateway spends its coins one by one.
	if err := b.call(ctx, "searchrawtransactions", []any{b.addr.EncodeAddress(), 1, 0, 100, 0, true}, &txs); err != nil {
		return wire.OutPoint{}, 0, err
	}
	want := hex.EncodeToString(b.script)
	for _, t := range txs {
		h, err := chainhash.NewHashFromStr(t.Txid)
		if err != nil {
			continue
		}
		for _, o := range t.Vout {
			op := wire.OutPoint{Hash: *h, Index: o.N}
			if o.ScriptPubKey.Hex != want || b.spent[op] {
				continue
			}
			var out *struct {
				Confirmations int64   `json:"confirmations"`
				Value         float64 `json:"value"`
				Coinbase      bool    `json:"coinbase"`
			}
			if err := b.call(ctx, "gettxout", []any{t.Txid, o.N, false}, &out); err != nil {
				return wire.OutPoint{}, 0, err
			}
			if out == nil || out.Confirmations < 1 || (out.Coinbase && out.Confirmations < 100) {
				continue
			}
			sat, err := btcutil.NewAmount(out.Value)
			if err != nil || int64(sat) < min {
				continue
			}
			return op, int64(sat), nil
		}
	}
	return wire.OutPoint{}, 0, fmt.Errorf("%w: none of at least %d sat at %s", ErrNoCoin, min, b.addr)
}

// Upgrade completes a pending proof once its transaction has
// MinConfirmations: it fetches the block, builds the Merkle branch and
// checks the result with anchor.VerifyAnchor.
func (b *Anchorer) Upgrade(ctx context.Context, a anchor.AnchorProof) (anchor.AnchorProof, error) {
	p, err := decodeBitcoinProof(a.Proof)
	if err != nil {
		return a, err
	}
	if !p.pending {
		return a, nil
	}
	var info struct {
		BlockHash     string `json:"blockhash"`
		Confirmations int64  `json:"confirmations"`
	}
	if err := b.call(ctx, "getrawtransaction", []any{p.txid.String(), 1}, &info); err != nil {
		return a, err
	}
	if info.BlockHash == "" || info.Confirmations < b.cfg.MinConfirmations {
		return a, fmt.Errorf("%w: %s has %d confirmations", anchor.ErrAnchorPending, p.txid, info.Confirmations)
	}
	var blockHex string
	if err := b.call(ctx, "getblock", []any{info.BlockHash, 0}, &blockHex); err != nil {
		return a, err
	}
	raw, err := hex.DecodeString(blockHex)
	if err != nil {
		return a, fmt.Errorf("%w: getblock: %w", ErrRPC, err)
	}
	var block wire.MsgBlock
	if err := block.Deserialize(bytes.NewReader(raw)); err != nil {
		return a, fmt.Errorf("anchor: getblock: %w", err)
	}
	var header struct {
		Height int64 `json:"height"`
	}
	if err := b.call(ctx, "getblockheader", []any{info.BlockHash, true}, &header); err != nil {
		return a, err
	}
	txids := make([]chainhash.Hash, len(block.Transactions))
	index := -1
	for i, tx := range block.Transactions {
		txids[i] = tx.TxHash()
		if txids[i] == p.txid {
			index = i
		}
	}
	if index < 0 {
		return a, fmt.Errorf("%w: block %s does not hold %s", ErrRPC, info.BlockHash, p.txid)
	}
	done := bitcoinProof{height: uint32(header.Height), txIndex: uint32(index), branch: merkleBranch(txids, index)}
	var hb, tb bytes.Buffer
	if err := block.Header.Serialize(&hb); err != nil {
		return a, err
	}
	copy(done.header[:], hb.Bytes())
	if err := block.Transactions[index].SerializeNoWitness(&tb); err != nil {
		return a, err
	}
	done.tx = tb.Bytes()
	out := anchor.AnchorProof{Kind: anchor.KindBitcoinOpReturn, Digest: a.Digest, Proof: done.encode()}
	if _, err := anchor.VerifyAnchor(out); err != nil {
		return a, err
	}
	return out, nil
}

// call makes one JSON-RPC 1.0 call, as btcd and Bitcoin Core take them.
func (b *Anchorer) call(ctx context.Context, method string, params []any, result any) error {
	body, err := json.Marshal(map[string]any{"jsonrpc": "1.0", "id": 1, "method": method, "params": params})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.cfg.RPCURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.SetBasicAuth(b.cfg.RPCUser, b.cfg.RPCPass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrRPC, method, err)
	}
	defer resp.Body.Close()
	var out struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	// A block is at most a few MB of hex.
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&out); err != nil {
		return fmt.Errorf("%w: %s: %s: %w", ErrRPC, method, resp.Status, err)
	}
	if out.Error != nil {
		return fmt.Errorf("%w: %s: %d %s", ErrRPC, method, out.Error.Code, out.Error.Message)
	}
	if result == nil {
		return nil
	}
	if err := json.Unmarshal(out.Result, result); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrRPC, method, err)
	}
	return nil
}

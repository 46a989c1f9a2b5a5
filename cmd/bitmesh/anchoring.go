package main

import (
	"fmt"
	"net/url"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg"

	"github.com/bitmesh/bitmesh/anchor/bitcoin"
	"github.com/bitmesh/bitmesh/identity"
)

// newBitcoinAnchorer makes the OP_RETURN anchorer of `node
// --anchor-bitcoin-rpc`: the RPC credentials come from the URL, and the
// device key (secp256k1, like Bitcoin's) pays for the transactions.
func newBitcoinAnchorer(rawURL, network string, key *identity.PrivateKey) (*bitcoin.Anchorer, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--anchor-bitcoin-rpc: %q is not an http(s) URL", rawURL)
	}
	params := map[string]*chaincfg.Params{
		"mainnet": &chaincfg.MainNetParams, "testnet3": &chaincfg.TestNet3Params, "signet": &chaincfg.SigNetParams,
		"regtest": &chaincfg.RegressionNetParams, "simnet": &chaincfg.SimNetParams,
	}[network]
	if params == nil {
		return nil, fmt.Errorf("--anchor-bitcoin-net: unknown network %q", network)
	}
	cfg := bitcoin.Config{Net: params, Key: func() *btcec.PrivateKey {
		k, _ := btcec.PrivKeyFromBytes(key.Bytes())
		return k
	}()}
	if u.User != nil {
		cfg.RPCUser = u.User.Username()
		cfg.RPCPass, _ = u.User.Password()
		u.User = nil
	}
	cfg.RPCURL = u.String()
	return bitcoin.NewAnchorer(cfg)
}

package main

import (
	"testing"
)

func TestNewBitcoinAnchorerFlags(t *testing.T) {
	key := newTestKey(t)
	a, err := newBitcoinAnchorer("http://user:secret@127.0.0.1:18556", "simnet", key)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Address().EncodeAddress(); got[0] != 'S' { // simnet P2PKH
		t.Fatalf("funding address %s is not a simnet address", got)
	}
	for _, tc := range []struct{ name, url, net string }{
		{"not a URL", "127.0.0.1:18556", "simnet"},
		{"other scheme", "ftp://h:1", "simnet"},
		{"unknown network", "http://h:1", "moonnet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := newBitcoinAnchorer(tc.url, tc.net, key); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

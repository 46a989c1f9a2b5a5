package node

import (
	"testing"

	"github.com/bitmesh/bitmesh/gossip"
)

// TestWithSharedSignatureCache: the simulator-only option reaches the
// node's validator; without it a node verifies every signature itself.
func TestWithSharedSignatureCache(t *testing.T) {
	shared := gossip.NewSignatureCache()
	for _, tc := range []struct {
		name    string
		opts    []Option
		want    *gossip.SignatureCache
		wantErr bool
	}{
		{"default: none", nil, nil, false},
		{"shared", []Option{WithSharedSignatureCache(shared)}, shared, false},
		{"nil cache", []Option{WithSharedSignatureCache(nil)}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := New(LocalConfig(), tc.opts...)
			if tc.wantErr {
				if err == nil {
					t.Fatal("New accepted a nil shared signature cache")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			if got := n.validator.Config().SharedSignatures; got != tc.want {
				t.Fatalf("validator's shared cache %p, want %p", got, tc.want)
			}
		})
	}
}

// Package testnode holds what the project's tests ask of a real node
// from outside it.
package testnode

import (
	"testing"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/node"
)

// Score is s's misbehaviour score at n, or 100 if n banned s.
func Score(t testing.TB, n *node.Node, s antispam.Subject) uint32 {
	t.Helper()
	bans, err := n.Bans()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bans {
		if b.Subject == s {
			return 100
		}
	}
	scores, err := n.Scores()
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range scores {
		if sc.Subject == s {
			return sc.Score
		}
	}
	return 0
}

package ext

import (
	"errors"
	"fmt"
	"testing"

	"go.uber.org/goleak"

	"github.com/bitmesh/bitmesh/antispam"
	"github.com/bitmesh/bitmesh/gossip"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCheckVerdict(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		err  error
		v    gossip.Verdict
		m    antispam.Misbehaviour
	}{
		{"nil accepts", nil, gossip.Accept, 0},
		{"ignore", fmt.Errorf("not yet: %w", ErrIgnore), gossip.Ignore, 0},
		{"plain error rejects as malformed", boom, gossip.Reject, antispam.Malformed},
		{"named misbehaviour", Reject(antispam.BadSignature, boom), gossip.Reject, antispam.BadSignature},
		{"wrapped reject", fmt.Errorf("ctx: %w", Reject(antispam.Equivocation, boom)), gossip.Reject, antispam.Equivocation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, m := CheckVerdict(tc.err)
			if v != tc.v || m != tc.m {
				t.Fatalf("CheckVerdict(%v) = %v, %v; want %v, %v", tc.err, v, m, tc.v, tc.m)
			}
		})
	}
	if err := Reject(antispam.BadSignature, boom); !errors.Is(err, boom) {
		t.Fatal("RejectError does not unwrap to its cause")
	}
}

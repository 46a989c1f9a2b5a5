package sim

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// exhaust is the eclipse by connection exhaustion (Heilman et al., 2015):
// sybils, each linked to the Target node before any honest node links to
// it and to Targets−1 other honest nodes, hold more connections to the
// target than its high watermark and dial it again within redialEvery
// whenever it drops one. Until Strike they relay honestly, racing the
// target's honest peers for first deliveries (the value its connection
// manager trims by) and for its mesh slots (which GossipSub protects from
// trimming); then they all go silent. With AdversarySpec.Restart the
// target restarts, and the sybils race its own dials for the fresh slots.
type exhaust struct{}

// redialEvery is how soon a dropped sybil dials the target again.
const redialEvery = 250 * time.Millisecond

func (exhaust) Run(ctx context.Context, env AttackEnv) error {
	target, err := env.Honest[env.Spec.Target].PeerID()
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, a := range env.Attackers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(redialEvery)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				if a.Host.Network().Connectedness(target) != network.Connected {
					_, _ = a.Host.Network().DialPeer(ctx, target)
				}
			}
		}()
	}
	return sybil{silence: true}.Run(ctx, env)
}

package sim

import (
	"context"
	"crypto/rand"
	"sync"
	"time"

	"github.com/bitmesh/bitmesh/lightning"
)

// freeloader wants paid services without paying. Each of its hosts, once
// a second, tries one trick on a target in turn:
//
//   - use a token made of random bytes;
//   - ask for a challenge, do not pay, present its token with a random
//     preimage;
//   - pay for one unit at one target, and present the paid token and its
//     preimage at another target (a replay on another seller);
//   - use that paid token again once its unit is spent.
//
// Every attempt must be refused; PaymentsReport counts them by the
// sellers' refusal codes. Needs a scenario with payments.
type freeloader struct{}

func (freeloader) Run(ctx context.Context, env AttackEnv) error {
	if env.Payments == nil {
		return nil // Validate refuses such a scenario
	}
	targets := env.Targets
	var wg sync.WaitGroup
	defer wg.Wait()
	for i, a := range env.Attackers {
		wallet := env.Payments.net.Backend(walletMsat)
		wg.Go(func() {
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for n := i; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				ts := targets[a.Host.ID()]
				if len(ts) == 0 {
					continue
				}
				seller, other := ts[n%len(ts)], ts[(n+1)%len(ts)]
				ask := func(req lightning.Request) (lightning.Response, error) {
					return lightning.Ask(ctx, a.Host, seller, req)
				}
				var err error
				switch n % 3 {
				case 0:
					junk := make([]byte, 120)
					rand.Read(junk)
					_, err = ask(lightning.Request{Op: lightning.OpUse, Service: PaidService, Units: 1, Token: junk, Preimage: junk[:32]})
				case 1:
					ch, cerr := ask(lightning.Request{Op: lightning.OpChallenge, Service: PaidService, Units: 1})
					if cerr != nil {
						continue // rate-limited: nothing was attempted
					}
					pre := make([]byte, 32)
					rand.Read(pre)
					_, err = ask(lightning.Request{Op: lightning.OpUse, Service: PaidService, Units: 1, Token: ch.Token, Preimage: pre})
				case 2:
					ch, cerr := ask(lightning.Request{Op: lightning.OpChallenge, Service: PaidService, Units: 1})
					if cerr != nil {
						continue
					}
					pre, perr := wallet.Pay(ctx, ch.Invoice, 0)
					if perr != nil {
						continue
					}
					// Honest use of what it paid for: not counted.
					if _, uerr := ask(lightning.Request{Op: lightning.OpUse, Service: PaidService, Units: 1, Token: ch.Token, Preimage: pre[:]}); uerr != nil {
						continue
					}
					// The spent unit again, here, then at another seller.
					_, err = ask(lightning.Request{Op: lightning.OpUse, Service: PaidService, Units: 1, Token: ch.Token, Preimage: pre[:]})
					env.Payments.tally.freeload(err)
					if other == seller {
						continue
					}
					_, err = lightning.Ask(ctx, a.Host, other, lightning.Request{Op: lightning.OpUse, Service: PaidService, Units: 1, Token: ch.Token, Preimage: pre[:]})
				}
				if ctx.Err() != nil {
					return
				}
				env.Payments.tally.freeload(err)
			}
		})
	}
	return nil
}

// payEnv is what a payment adversary needs of the run.
type payEnv struct {
	net   *lightning.InProcessNetwork
	tally *payTally
}

package sim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bitmesh/bitmesh/identity"
	"github.com/bitmesh/bitmesh/lightning"
)

// Payments puts paid services in a scenario: every honest node sells
// PaidService at PriceMsat a unit through one in-process Lightning
// network (lightning.InProcessNetwork), and the first Buyers honest nodes
// each buy a unit from a random neighbour every Interval after warmup,
// and use it.
type Payments struct {
	PriceMsat uint64   `yaml:"price_msat"`
	Buyers    int      `yaml:"buyers"`
	Interval  Duration `yaml:"interval"`
}

// PaidService is what the honest nodes of a scenario with payments sell:
// a reading, 32 bytes.
const PaidService = "reading"

// walletMsat is what every honest node and every freeloader starts with.
const walletMsat = 1 << 40

func (p *Payments) validate(nodes int) error {
	if p.PriceMsat == 0 || p.Buyers < 0 || p.Buyers > nodes || p.Interval.Duration <= 0 {
		return fmt.Errorf("payments: price_msat > 0, buyers 0..nodes, interval > 0")
	}
	return nil
}

// sellerConfig is an honest node's payment extension.
func (p *Payments) sellerConfig(net *lightning.InProcessNetwork) lightning.Config {
	cfg := lightning.DefaultConfig()
	cfg.Backend = net.Backend(walletMsat)
	cfg.MaxPriceMsat = p.PriceMsat * 100
	cfg.Services = []lightning.Service{{Name: PaidService, PriceMsat: p.PriceMsat, Unit: "reading",
		Serve: func(_ context.Context, buyer identity.DeviceID, _ uint64, _ []byte) ([]byte, error) {
			return buyer[:], nil
		}}}
	return cfg
}

// PaymentsReport is how paid services fared: the honest purchases, and
// what freeloaders (requests without paying, replayed tokens, others'
// preimages) got. FreeloaderServed must be 0.
type PaymentsReport struct {
	HonestPurchases    int            `json:"honest_purchases"`
	HonestFailures     int            `json:"honest_failures"`
	FreeloaderAttempts int            `json:"freeloader_attempts"`
	FreeloaderServed   int            `json:"freeloader_served"`
	Refusals           map[string]int `json:"refusals"` // freeloaders' attempts, by the seller's refusal code
}

// payTally counts a run's payment events; safe for concurrent use.
type payTally struct {
	mu  sync.Mutex
	rep PaymentsReport
}

func newPayTally() *payTally { return &payTally{rep: PaymentsReport{Refusals: map[string]int{}}} }

func (t *payTally) honest(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.rep.HonestFailures++
	} else {
		t.rep.HonestPurchases++
	}
}

// freeload records an attempt that should have been refused: err is
// what the seller answered.
func (t *payTally) freeload(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rep.FreeloaderAttempts++
	var refused *lightning.RefusedError
	switch {
	case err == nil:
		t.rep.FreeloaderServed++
	case errors.As(err, &refused):
		t.rep.Refusals[refused.Code]++
	default:
		t.rep.Refusals["stream-error"]++
	}
}

func (t *payTally) report() *PaymentsReport {
	t.mu.Lock()
	defer t.mu.Unlock()
	rep := t.rep
	rep.Refusals = maps.Clone(t.rep.Refusals)
	return &rep
}

// buyLoop is honest buyer b: every interval until ctx ends, it buys a
// unit of PaidService from a random neighbour and uses it.
func buyLoop(ctx context.Context, l *lightning.Lightning, neighbours []peer.ID, interval time.Duration, rng *rand.Rand, tally *payTally) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		seller := neighbours[rng.IntN(len(neighbours))]
		cred, err := l.Buy(ctx, seller, PaidService, 1)
		if err == nil {
			_, err = l.Use(ctx, cred, 1, nil)
		}
		if ctx.Err() != nil {
			return // the run ended mid-purchase: not a failure
		}
		tally.honest(err)
	}
}

// startBuyers starts the honest buyers of a scenario with payments: from
// warmup until the traffic's end. The returned function waits for them.
func startBuyers(halt context.Context, sc Scenario, start time.Time, g *graph, nodes []*honest, pay *payEnv) (wait func()) {
	if pay == nil {
		return func() {}
	}
	end := start.Add(sc.Warmup.Duration + time.Duration(sc.Traffic.Messages)*sc.Traffic.Interval.Duration)
	ctx, cancel := context.WithDeadline(halt, end)
	var wg sync.WaitGroup
	for b := range sc.Payments.Buyers {
		var neighbours []peer.ID
		for _, e := range g.adj[b] {
			neighbours = append(neighbours, nodes[e.a+e.b-b].id)
		}
		if len(neighbours) == 0 || nodes[b].pay == nil {
			continue
		}
		rng := rand.New(rand.NewPCG(sc.Seed, 0xb1<<32|uint64(b)))
		wg.Go(func() {
			if sleepUntil(ctx, start.Add(sc.Warmup.Duration)) {
				buyLoop(ctx, nodes[b].pay, neighbours, sc.Payments.Interval.Duration, rng, pay.tally)
			}
		})
	}
	return func() { wg.Wait(); cancel() }
}

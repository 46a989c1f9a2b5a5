package sim

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// links takes honest links down and up for partitions and churn. A link
// that two disruptions cut comes back when both have ended.
type links struct {
	w     *wires
	ids   []peer.ID
	mu    sync.Mutex
	down  map[[2]int]int // reasons each edge is down
	edges map[[2]int]edge
}

func newLinks(w *wires, ids []peer.ID, g *graph) *links {
	l := &links{w: w, ids: ids, down: map[[2]int]int{}, edges: map[[2]int]edge{}}
	for _, e := range g.edges {
		l.edges[[2]int{e.a, e.b}] = e
	}
	return l
}

func (l *links) cut(es []edge) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range es {
		k := [2]int{e.a, e.b}
		if l.down[k]++; l.down[k] == 1 {
			l.w.cut(l.ids[e.a], l.ids[e.b])
		}
	}
}

func (l *links) restore(es []edge) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range es {
		k := [2]int{e.a, e.b}
		if l.down[k]--; l.down[k] == 0 {
			delete(l.down, k)
			_ = l.w.connect(l.ids[e.a], l.ids[e.b], e.latency)
		}
	}
}

// disrupt runs the scenario's partitions and churn from start (the end of
// warmup) until end, and returns when all links it cut are back, or as
// soon as halt is done (leaving them cut: the run is ending).
func disrupt(halt context.Context, sc Scenario, g *graph, l *links, rng *rand.Rand, start, end time.Time) {
	var wg sync.WaitGroup
	for _, p := range sc.Partitions {
		side := int(p.Fraction * float64(sc.Nodes))
		var crossing []edge
		for _, e := range g.edges {
			if (e.a < side) != (e.b < side) {
				crossing = append(crossing, e)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !sleepUntil(halt, start.Add(p.At.Duration)) {
				return
			}
			l.cut(crossing)
			if !sleepUntil(halt, start.Add(p.Heal.Duration)) {
				return
			}
			l.restore(crossing)
		}()
	}
	if c := sc.Churn; c != nil {
		candidates := sc.Nodes - sc.Traffic.Publishers // publishers stay up
		count := max(1, int(c.Fraction*float64(candidates)))
		var rounds [][]edge
		for at := c.Interval.Duration; start.Add(at).Before(end); at += c.Interval.Duration {
			var es []edge
			for _, i := range rng.Perm(candidates)[:count] {
				es = append(es, g.adj[sc.Traffic.Publishers+i]...)
			}
			rounds = append(rounds, es)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, es := range rounds {
				if !sleepUntil(halt, start.Add(time.Duration(i+1)*c.Interval.Duration)) {
					return
				}
				l.cut(es)
				if !sleepUntil(halt, time.Now().Add(c.Downtime.Duration)) {
					return
				}
				l.restore(es)
			}
		}()
	}
	wg.Wait()
}

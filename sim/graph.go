package sim

import (
	"container/heap"
	"math/rand/v2"
	"time"
)

type edge struct {
	a, b    int
	latency time.Duration
}

// graph is the honest topology: undirected links with one-way latencies.
type graph struct {
	n         int
	edges     []edge
	adj       [][]edge // by node; each edge listed at both ends
	link      Link
	seen      map[[2]int]bool
	latencyOf func(a, b int) time.Duration // regions; nil: link.latency_ms
}

// newGraph builds the scenario's topology.
func newGraph(rng *rand.Rand, sc Scenario) *graph {
	t := sc.Topology
	g := &graph{n: sc.Nodes, adj: make([][]edge, sc.Nodes), link: sc.Link, seen: make(map[[2]int]bool)}
	switch t.Kind {
	case "explicit":
		for _, e := range t.Edges {
			g.add(int(e[0]), int(e[1]), time.Duration(e[2]*float64(time.Millisecond)))
		}
		return g
	case "regions":
		regions := len(t.RegionLatencyMS)
		g.latencyOf = func(a, b int) time.Duration {
			base := t.RegionLatencyMS[a%regions][b%regions]
			return jittered(rng, base, sc.Link.JitterPct)
		}
	}
	g.randomLinks(rng, t.Degree)
	return g
}

// add links a and b once; latency < 0 draws it.
func (g *graph) add(a, b int, latency time.Duration) {
	if a == b {
		return
	}
	k := [2]int{min(a, b), max(a, b)}
	if g.seen[k] {
		return
	}
	g.seen[k] = true
	e := edge{a: a, b: b, latency: latency}
	g.edges = append(g.edges, e)
	g.adj[a] = append(g.adj[a], e)
	g.adj[b] = append(g.adj[b], e)
}

func (g *graph) drawLatency(rng *rand.Rand, a, b int) time.Duration {
	if g.latencyOf != nil {
		return g.latencyOf(a, b)
	}
	return g.linkLatency(rng)
}

// randomLinks links every node to degree random others and closes a ring
// through all nodes, so the graph is connected whatever the draw.
func (g *graph) randomLinks(rng *rand.Rand, degree int) {
	n := g.n
	add := func(a, b int) { g.add(a, b, g.drawLatency(rng, a, b)) }
	seen := g.seen
	order := rng.Perm(n)
	for i := range order {
		add(order[i], order[(i+1)%n])
	}
	for a := range n {
		for len(g.adj[a]) < degree {
			before := len(g.adj[a])
			add(a, rng.IntN(n))
			if len(g.adj[a]) == before && len(seen) >= n*(n-1)/2 {
				break
			}
		}
	}
}

// linkLatency draws one link's latency: LatencyMS ± JitterPct percent.
func (g *graph) linkLatency(rng *rand.Rand) time.Duration {
	return jittered(rng, g.link.LatencyMS, g.link.JitterPct)
}

func jittered(rng *rand.Rand, ms, pct float64) time.Duration {
	ms *= 1 + pct/100*(2*rng.Float64()-1)
	return time.Duration(ms * float64(time.Millisecond))
}

// shortestFrom returns the least total latency from src to every node
// (Dijkstra): the physical lower bound of any delivery.
func (g *graph) shortestFrom(src int) []time.Duration {
	const inf = time.Duration(1<<63 - 1)
	dist := make([]time.Duration, g.n)
	for i := range dist {
		dist[i] = inf
	}
	dist[src] = 0
	q := &distQueue{{src, 0}}
	for q.Len() > 0 {
		it := heap.Pop(q).(distItem)
		if it.d > dist[it.node] {
			continue
		}
		for _, e := range g.adj[it.node] {
			next := e.b
			if next == it.node {
				next = e.a
			}
			if d := it.d + e.latency; d < dist[next] {
				dist[next] = d
				heap.Push(q, distItem{next, d})
			}
		}
	}
	return dist
}

type distItem struct {
	node int
	d    time.Duration
}

type distQueue []distItem

func (q distQueue) Len() int           { return len(q) }
func (q distQueue) Less(i, j int) bool { return q[i].d < q[j].d }
func (q distQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *distQueue) Push(x any)        { *q = append(*q, x.(distItem)) }
func (q *distQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}

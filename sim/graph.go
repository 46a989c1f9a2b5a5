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
	n     int
	edges []edge
	adj   [][]edge // by node; each edge listed at both ends
	link  Link
}

// randomGraph links every node to degree random others and closes a ring
// through all nodes, so the graph is connected whatever the draw.
func randomGraph(rng *rand.Rand, n, degree int, l Link) *graph {
	g := &graph{n: n, adj: make([][]edge, n), link: l}
	seen := make(map[[2]int]bool)
	add := func(a, b int) {
		if a == b {
			return
		}
		k := [2]int{min(a, b), max(a, b)}
		if seen[k] {
			return
		}
		seen[k] = true
		e := edge{a: a, b: b, latency: g.linkLatency(rng)}
		g.edges = append(g.edges, e)
		g.adj[a] = append(g.adj[a], e)
		g.adj[b] = append(g.adj[b], e)
	}
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
	return g
}

// linkLatency draws one link's latency: LatencyMS ± JitterPct percent.
func (g *graph) linkLatency(rng *rand.Rand) time.Duration {
	ms := g.link.LatencyMS * (1 + g.link.JitterPct/100*(2*rng.Float64()-1))
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

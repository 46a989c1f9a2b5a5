package metrics

import (
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bitmesh/bitmesh/node"
)

// Limits of the endpoints, for a small board facing a careless or hostile
// scraper.
const (
	// maxScrapes is how many /metrics requests are served at once; more
	// are answered 503 at once.
	maxScrapes = 2
	// scrapeTimeout bounds gathering one scrape.
	scrapeTimeout = 10 * time.Second
)

// NewRegistry returns a private registry holding the Go runtime and
// process collectors. Hand it to libp2p (libp2p.PrometheusRegisterer)
// before the node is built to add the host's own metrics, then to New.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// New registers n's collector in reg (a fresh NewRegistry if nil) and
// returns the handler of /metrics, /healthz and /readyz. Every other path
// is 404, and every method but GET and HEAD 405: the handler only reads.
// New fails if reg already holds a node's collector.
func New(reg *prometheus.Registry, n *node.Node, opts ...Option) (http.Handler, error) {
	if n == nil {
		return nil, ErrNilNode
	}
	if reg == nil {
		reg = NewRegistry()
	}
	c := &collector{n: n}
	for _, o := range opts {
		o(c)
	}
	if err := reg.Register(c); err != nil {
		return nil, fmt.Errorf("metrics: registering the node's collector: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError, // serve what could be gathered
		MaxRequestsInFlight: maxScrapes,
		Timeout:             scrapeTimeout,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !n.Running() {
			unavailable(w, "node not running")
			return
		}
		ok(w)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		switch {
		case !n.Running():
			unavailable(w, "node not running")
		case len(n.Peers()) == 0:
			unavailable(w, "no peers")
		default:
			ok(w)
		}
	})
	return mux, nil
}

func ok(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

func unavailable(w http.ResponseWriter, reason string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, reason, http.StatusServiceUnavailable)
}

// NewServer returns an http.Server for h with every timeout bounded and
// small headers, so idle or slow clients cannot hold the listener's
// connections open. Serve it on a listener of its own, not the control
// API's.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      scrapeTimeout + 5*time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    8 << 10,
	}
}

package sim

import (
	"context"
	"io"
	"net"
	"sync"
	"time"
)

// delayProxy forwards TCP connections from a loopback port to target,
// delaying every chunk by latency in each direction while keeping byte
// order: the one-way link delay that tc netem would add, in user space
// (these kernels have no netem). Close stops it and every connection.
type delayProxy struct {
	ln      net.Listener
	target  string
	from    *net.TCPAddr // local address to dial target from; nil: any
	latency time.Duration
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// newDelayProxy listens on listenIP (a free port) and forwards to target,
// dialling from fromIP: each simulated node gets a loopback address of its
// own, so GossipSub's per-IP colocation score sees distinct hosts.
func newDelayProxy(listenIP, fromIP net.IP, target string, latency time.Duration) (*delayProxy, error) {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: listenIP})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &delayProxy{ln: ln, target: target, from: &net.TCPAddr{IP: fromIP}, latency: latency, ctx: ctx, cancel: cancel}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's listening address.
func (p *delayProxy) Addr() *net.TCPAddr { return p.ln.Addr().(*net.TCPAddr) }

func (p *delayProxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := (&net.Dialer{LocalAddr: p.from}).DialContext(p.ctx, "tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.wg.Add(2)
		go func() { defer p.wg.Done(); p.pipe(out, in) }()
		go func() { defer p.wg.Done(); p.pipe(in, out) }()
	}
}

type chunk struct {
	b  []byte
	at time.Time
}

// pipe copies src to dst, each chunk released latency after it arrived.
// When either side ends, both connections close.
func (p *delayProxy) pipe(dst, src net.Conn) {
	q := make(chan chunk, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range q {
			if d := time.Until(c.at); d > 0 {
				select {
				case <-time.After(d):
				case <-p.ctx.Done():
					return
				}
			}
			if _, err := dst.Write(c.b); err != nil {
				return
			}
		}
	}()
	stop := context.AfterFunc(p.ctx, func() { src.Close(); dst.Close() })
	defer stop()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case q <- chunk{append([]byte(nil), buf[:n]...), time.Now().Add(p.latency)}:
			case <-done:
				err = io.ErrClosedPipe
			}
		}
		if err != nil {
			break
		}
	}
	close(q)
	<-done
	dst.Close()
	src.Close()
}

// Close stops the proxy and waits for its connections to end.
func (p *delayProxy) Close() error {
	p.cancel()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

package sim

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// TestDelayProxy checks the physics over real loopback sockets: a round
// trip through the proxy takes at least twice its one-way latency, bytes
// arrive complete and in order, and Close ends the connections.
func TestDelayProxy(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	const latency = 30 * time.Millisecond
	lo := net.IPv4(127, 0, 0, 1)
	p, err := newDelayProxy(lo, lo, echo.Addr().String(), latency)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var sent bytes.Buffer
	start := time.Now()
	for i := range 200 {
		chunk := bytes.Repeat([]byte{byte(i)}, 1+i*37%4000)
		sent.Write(chunk)
		if _, err := c.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, sent.Len())
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if rtt := time.Since(start); rtt < 2*latency {
		t.Fatalf("round trip took %v, less than twice the %v one-way latency", rtt, latency)
	}
	if !bytes.Equal(got, sent.Bytes()) {
		t.Fatal("bytes came back out of order or altered")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after Close")
	}
}

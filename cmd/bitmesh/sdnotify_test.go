package main

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

// TestNodeNotifiesSystemd runs `bitmesh node` as systemd runs a
// Type=notify service with a watchdog: NOTIFY_SOCKET names a datagram
// socket, WATCHDOG_USEC the watchdog interval. The node must say READY=1
// once it serves, then ping WATCHDOG=1.
func TestNodeNotifiesSystemd(t *testing.T) {
	if testing.Short() {
		t.Log("-short: skipping the process test")
		return
	}
	path := filepath.Join(t.TempDir(), "notify.sock")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "400000") // a ping every 200 ms
	t.Setenv("WATCHDOG_PID", "")

	_, ready := startNodeProc(t, t.TempDir())
	if ready.API == "" {
		t.Fatalf("ready event %+v", ready)
	}
	buf := make([]byte, 256)
	var got []string
	for len(got) < 2 {
		sock.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := sock.Read(buf)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, string(buf[:n]))
	}
	if got[0] != "READY=1" || got[1] != "WATCHDOG=1" {
		t.Fatalf("the node sent %q, want READY=1 then WATCHDOG=1", got)
	}
}

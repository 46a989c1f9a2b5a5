// Package sdnotify speaks systemd's service notification protocol
// (sd_notify(3)) without cgo or a library: a unit with Type=notify waits
// for the service to say READY=1 on the datagram socket named by
// NOTIFY_SOCKET, and a unit with WatchdogSec restarts a service that stops
// sending WATCHDOG=1 for that long (WATCHDOG_USEC).
//
// Every function is a no-op returning nil outside systemd (NOTIFY_SOCKET
// unset), so callers need no condition of their own.
package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Messages a service sends (sd_notify(3)).
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
	Watchdog = "WATCHDOG=1"
)

// ErrSocket: NOTIFY_SOCKET names something this package cannot send to.
var ErrSocket = errors.New("sdnotify: bad NOTIFY_SOCKET")

// Notify sends state, one or more newline-separated assignments, to the
// socket in NOTIFY_SOCKET. It returns nil when NOTIFY_SOCKET is unset.
func Notify(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	switch {
	case addr[0] == '@':
		addr = "\x00" + addr[1:] // an abstract socket
	case addr[0] != '/':
		return fmt.Errorf("%w: %q is neither a path nor an abstract name", ErrSocket, addr)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSocket, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}

// WatchdogInterval returns how often to send Watchdog: half the interval
// systemd gave in WATCHDOG_USEC, as sd_watchdog_enabled(3) advises, or 0
// when the watchdog is off or meant for another process (WATCHDOG_PID).
func WatchdogInterval() time.Duration {
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// KeepAlive sends Watchdog every WatchdogInterval while alive reports
// true, until ctx ends. It returns at once when the watchdog is off. A
// node that stops being alive (its main loop stuck) stops the pings, and
// systemd restarts it.
func KeepAlive(ctx context.Context, alive func() bool) {
	every := WatchdogInterval()
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if alive() {
				_ = Notify(Watchdog) // nothing to do about a lost ping but try again
			}
		}
	}
}

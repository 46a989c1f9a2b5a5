package cli

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
)

// Interrupted is the cancellation cause of a context SignalContext
// cancelled: the signal that asked the command to stop.
type Interrupted struct{ Signal syscall.Signal }

func (e Interrupted) Error() string {
	switch e.Signal {
	case syscall.SIGINT:
		return "interrupted (SIGINT)"
	case syscall.SIGTERM:
		return "interrupted (SIGTERM)"
	}
	return "interrupted (" + e.Signal.String() + ")"
}

// ExitCode is 128 plus the signal's number, what shells report for a
// process the signal ended: 130 for SIGINT, 143 for SIGTERM.
func (e Interrupted) ExitCode() int { return 128 + int(e.Signal) }

// SignalContext returns a copy of parent cancelled, with an Interrupted
// cause, when the process gets SIGINT or SIGTERM. While it is in effect
// those signals do not end the process: the command must watch ctx. stop
// releases the signals and the context.
func SignalContext(parent context.Context) (ctx context.Context, stop context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case s := <-ch:
			sig, _ := s.(syscall.Signal)
			cancel(Interrupted{Signal: sig})
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		cancel(context.Canceled)
	}
}

// InterruptedBy reports the signal that cancelled ctx, if a signal did.
func InterruptedBy(ctx context.Context) (Interrupted, bool) {
	var in Interrupted
	ok := errors.As(context.Cause(ctx), &in)
	return in, ok
}

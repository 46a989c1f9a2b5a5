// Package testwait is the one polling helper of the project's tests: wait
// for a condition that real nodes, processes or networks reach in their
// own time, with a bound so that a test never hangs.
package testwait

import (
	"testing"
	"time"
)

// For polls f every step until it returns nil, and fails t with f's last
// error once total has elapsed.
func For(t testing.TB, total, step time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", total, err)
		}
		time.Sleep(step)
	}
}

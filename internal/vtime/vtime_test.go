package vtime

import (
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestWithTRunsVirtualTime uses the *testing.T that WithT makes, as the
// bitmesh binary does: an hour of sleep inside synctest must be an hour of
// virtual time, and a failure must come back as an error.
func TestWithTRunsVirtualTime(t *testing.T) {
	var slept time.Duration
	err := WithT(func(t *testing.T) {
		synctest.Test(t, func(*testing.T) {
			start := time.Now()
			time.Sleep(time.Hour)
			slept = time.Since(start)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if slept != time.Hour {
		t.Fatalf("slept %v of virtual time, want 1h", slept)
	}
	if err := WithT(func(t *testing.T) { t.Error("boom") }); err == nil {
		t.Fatal("a failing function returned no error")
	}
}

package sim

import (
	"os"
	"runtime"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// A child process of BenchmarkPlainVsBitmesh runs one side of the
	// comparison and exits, so that its CPU time and peak RSS are its own.
	if side := os.Getenv(overheadSideEnv); side != "" {
		os.Exit(overheadChild(side))
	}
	if raceEnabled {
		// Go 1.26's race detector shares one race context among all the
		// threads that run a synctest bubble's timers (runtime/time.go,
		// unlockAndRun: bubble.timers.raceCtx), so two Ms firing timers
		// of one bubble at once corrupt ThreadSanitizer's state: the
		// binary dies with "ThreadSanitizer: CHECK failed" or a SIGSEGV in
		// the runtime's timer code (golang/go#78156 is open). One P runs
		// one M at a time. Virtual time is unchanged; only wall time grows.
		runtime.GOMAXPROCS(1)
	}
	goleak.VerifyTestMain(m)
}

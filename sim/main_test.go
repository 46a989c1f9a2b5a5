package sim

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// A child process of BenchmarkPlainVsBitmesh runs one side of the
	// comparison and exits, so that its CPU time and peak RSS are its own.
	if side := os.Getenv(overheadSideEnv); side != "" {
		os.Exit(overheadChild(side))
	}
	goleak.VerifyTestMain(m)
}

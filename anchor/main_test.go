package anchor

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain doubles as the crash-test child: with ANCHOR_CRASH_CHILD set to a
// store path the test binary appends to that store until it is killed (see
// crash_test.go). Otherwise it runs the tests and checks that no goroutine
// outlives them.
func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		if err := runCrashChild(path, os.Getenv(crashSeedEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	code := m.Run()
	closeBenchLog()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain doubles as the bitmesh binary: with BITMESH_TEST_MAIN=1 the test
// executable runs the CLI, so end-to-end tests start real node processes
// from the code under test without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("BITMESH_TEST_MAIN") == "1" {
		os.Exit(runMain())
	}
	goleak.VerifyTestMain(m)
}

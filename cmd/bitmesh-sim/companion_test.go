package main

import (
	"strings"
	"testing"
)

// TestCrosscheckWithoutBitmesh fails before the virtual run, which takes
// a while, and says how to get the binary.
func TestCrosscheckWithoutBitmesh(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	code, _, stderr := runArgs("crosscheck", "crosscheck-30")
	if code != 1 || !strings.Contains(stderr, "go build ./cmd/bitmesh") {
		t.Fatalf("exit %d, want 1 naming the build command: %s", code, stderr)
	}
}

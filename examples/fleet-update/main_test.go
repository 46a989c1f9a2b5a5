package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestFleetUpdate runs the example with three devices and a 1 MiB image:
// every device installs both versions, the second from its neighbour.
func TestFleetUpdate(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), 3, 1<<20, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if got := strings.Count(out.String(), "installed sensor-fw-2.0"); got != 3 {
		t.Fatalf("%d devices reported version 2:\n%s", got, out.String())
	}
	t.Log(out.String())
}

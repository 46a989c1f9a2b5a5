package metrics

import (
	"os/exec"
	"strings"
	"testing"
)

// TestMetricsImportsNoExtension: like node/control, package metrics knows
// no extension; the Merkle logs reach it through WithLogs, wired by the
// binary that built both.
func TestMetricsImportsNoExtension(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps gave %d packages: %q", len(deps), out)
	}
	for _, dep := range deps {
		if strings.HasPrefix(dep, "github.com/bitmesh/bitmesh/anchor") || dep == "github.com/bitmesh/bitmesh/node/control" {
			t.Errorf("node/metrics depends on %s", dep)
		}
	}
}

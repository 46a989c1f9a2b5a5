package control

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestControlImportsNoExtension: the control server must not know any
// extension. Extensions mount their own routes (ext.Routes), so a new one
// never has to edit this package, and a client of an extension's routes
// (such as bitmesh log's) lives with its user, through Client.Do.
func TestControlImportsNoExtension(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	extensions := []string{"github.com/bitmesh/bitmesh/anchor/meshlog"}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps gave %d packages: %q", len(deps), out)
	}
	for _, dep := range deps {
		if slices.Contains(extensions, dep) || strings.HasPrefix(dep, "github.com/bitmesh/bitmesh/anchor") {
			t.Errorf("node/control depends on %s", dep)
		}
	}
}

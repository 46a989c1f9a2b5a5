// Package scenarios holds the simulator scenarios shipped with bitmesh, so
// that `bitmesh sim list` and `bitmesh sim run NAME` find them in the
// bitmesh-sim binary. Each file documents what it tests and why its numbers are what
// they are.
package scenarios

import (
	"embed"
	"io/fs"
	"strings"
)

//go:embed *.yaml
var files embed.FS

// Names lists the shipped scenarios, without the .yaml suffix.
func Names() []string {
	entries, _ := fs.ReadDir(files, ".")
	var out []string
	for _, e := range entries {
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	return out
}

// Read returns a shipped scenario's YAML.
func Read(name string) ([]byte, error) { return files.ReadFile(name + ".yaml") }

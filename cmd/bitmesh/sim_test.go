package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSimRunsBitmeshSim runs `bitmesh sim` against a fake bitmesh-sim on
// PATH: arguments, streams and exit status pass through untouched.
func TestSimRunsBitmeshSim(t *testing.T) {
	for _, tc := range []struct {
		name           string
		args           []string
		installed      bool
		code           int
		stdout, stderr string // stderr: a substring when not installed
	}{
		{"arguments and stdout", []string{"sim", "list", "--json"}, true, 0, "args: list --json\n", ""},
		{"stdin", []string{"sim", "cat"}, true, 0, "from stdin\n", ""},
		{"failure is reported once, by bitmesh-sim", []string{"sim", "fail"}, true, 1, "", "bitmesh sim: boom\n"},
		{"usage error", []string{"sim", "2"}, true, 2, "", ""},
		{"any other status", []string{"sim", "3"}, true, 3, "", ""},
		{"killed by a signal", []string{"sim", "kill"}, true, 1, "", ""},
		{"not installed", []string{"sim", "list"}, false, 1, "", "go build ./cmd/bitmesh-sim"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pathDir := t.TempDir()
			t.Setenv("PATH", pathDir+string(os.PathListSeparator)+"/bin"+string(os.PathListSeparator)+"/usr/bin")
			if tc.installed {
				writeFakeSim(t, pathDir, 0o755)
			}
			in := filepath.Join(t.TempDir(), "stdin")
			if err := os.WriteFile(in, []byte("from stdin\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(in)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			stdin := os.Stdin
			os.Stdin = f
			defer func() { os.Stdin = stdin }()

			code, stdout, stderr := runArgs(tc.args...)
			if code != tc.code || stdout != tc.stdout {
				t.Fatalf("exit %d, stdout %q; want %d, %q\nstderr: %s", code, stdout, tc.code, tc.stdout, stderr)
			}
			if tc.installed && stderr != tc.stderr || !tc.installed && !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("stderr %q, want %q", stderr, tc.stderr)
			}
		})
	}
}

// writeFakeSim writes a bitmesh-sim that acts on its first argument.
func writeFakeSim(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	script := `#!/bin/sh
case "$1" in
list) echo "args: $*" ;;
cat) cat ;;
fail) echo "bitmesh sim: boom" >&2; exit 1 ;;
kill) kill -KILL $$ ;;
*) exit "$1" ;;
esac
`
	if err := os.WriteFile(filepath.Join(dir, simCommand), []byte(script), mode); err != nil {
		t.Fatal(err)
	}
}

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func runArgs(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestCLI pins the exit codes and messages `bitmesh sim` had before it
// moved into this binary.
func TestCLI(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"no subcommand", nil, 2, "Usage: bitmesh sim SUBCOMMAND"},
		{"help", []string{"--help"}, 0, "crosscheck"},
		{"unknown subcommand", []string{"frobnicate"}, 2, `unknown subcommand "frobnicate" (want list, run or crosscheck)`},
		{"list", []string{"list"}, 0, "baseline-1k\n"},
		{"list --json", []string{"list", "--json"}, 0, `"baseline-1k",`},
		{"list extra argument", []string{"list", "x"}, 2, "want 0 argument(s)"},
		{"run help", []string{"run", "--help"}, 0, "  --memprofile string"},
		{"run without scenario", []string{"run"}, 2, "bitmesh sim run: want 1 argument(s)"},
		{"run bad flag", []string{"run", "--nope", "x"}, 2, "flag provided but not defined"},
		{"run unknown scenario", []string{"run", "/nonexistent/scenario.yaml"}, 1, "bitmesh sim: scenario \"/nonexistent/scenario.yaml\" is neither shipped"},
		{"crosscheck help", []string{"crosscheck", "--help"}, 0, "--bin"},
		{"crosscheck too many arguments", []string{"crosscheck", "a", "b"}, 2, "want 1 argument(s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runArgs(tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			if !strings.Contains(out+errOut, tc.contains) {
				t.Fatalf("output lacks %q\nstdout: %s\nstderr: %s", tc.contains, out, errOut)
			}
		})
	}
}

package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestFindCompanion(t *testing.T) {
	for _, tc := range []struct {
		name       string
		besideSelf bool // a bitmesh next to this program
		besideMode os.FileMode
		onPath     bool   // a bitmesh in a PATH directory
		want       string // "beside", "path" or "" for an error
	}{
		{"beside", true, 0o755, false, "beside"},
		{"on PATH", false, 0, true, "path"},
		{"beside wins over PATH", true, 0o755, true, "beside"},
		{"beside but not executable", true, 0o644, true, "path"},
		{"nowhere", false, 0, false, ""},
		{"not executable, nowhere else", true, 0o644, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			selfDir, pathDir := t.TempDir(), t.TempDir()
			t.Setenv("PATH", pathDir)
			if tc.besideSelf {
				writeScript(t, filepath.Join(selfDir, "bitmesh"), tc.besideMode)
			}
			if tc.onPath {
				writeScript(t, filepath.Join(pathDir, "bitmesh"), 0o755)
			}
			got, err := FindCompanion("bitmesh", filepath.Join(selfDir, "bitmesh-sim"))
			switch tc.want {
			case "":
				if err == nil || !strings.Contains(err.Error(), "neither next to bitmesh-sim nor on PATH") {
					t.Fatalf("got %q, %v; want a not-found error", got, err)
				}
			case "beside":
				if err != nil || got != filepath.Join(selfDir, "bitmesh") {
					t.Fatalf("got %q, %v; want the one in %s", got, err, selfDir)
				}
			case "path":
				if err != nil || got != filepath.Join(pathDir, "bitmesh") {
					t.Fatalf("got %q, %v; want the one in %s", got, err, pathDir)
				}
			}
		})
	}
}

func writeScript(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), mode); err != nil {
		t.Fatal(err)
	}
}

func TestUsageText(t *testing.T) {
	var out strings.Builder
	fs := NewFlagSet("demo", "demo [--data DIR] ARG", &out)
	fs.String("data", "/var/lib/bitmesh", "data directory")
	fs.Bool("json", false, "print JSON")
	fs.Int("count", 3, "how many `N`")
	fs.Usage()
	for _, want := range []string{"Usage: bitmesh demo [--data DIR] ARG", "--data string", `(default "/var/lib/bitmesh")`, "--json\n", "--count N", "(default 3)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "\n  -d") || strings.Contains(out.String(), "default false") {
		t.Errorf("usage shows single-dash flags or zero defaults:\n%s", out.String())
	}
	out.Reset()
	if err := Usagef(fs, "--data is required"); err != ErrUsage || !strings.Contains(out.String(), "bitmesh demo: --data is required\nUsage:") {
		t.Fatalf("Usagef = %v, printed %q", err, out.String())
	}
}

func TestSignalContext(t *testing.T) {
	ctx, stop := SignalContext(context.Background())
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	<-ctx.Done()
	in, ok := InterruptedBy(ctx)
	if !ok || in.Signal != syscall.SIGINT || in.ExitCode() != 130 || in.Error() != "interrupted (SIGINT)" {
		t.Fatalf("InterruptedBy = %v, %v; want SIGINT, exit 130", in, ok)
	}
	stop()
	if _, ok := InterruptedBy(context.Background()); ok {
		t.Fatal("a context no signal cancelled reports a signal")
	}
}

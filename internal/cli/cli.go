// Package cli holds what the bitmesh commands (cmd/bitmesh and
// cmd/bitmesh-sim) share, so that both accept the same command lines:
// flag parsing with positional arguments anywhere, usage text, and
// finding the companion binary.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrUsage means the flag set already printed what was wrong; commands
// exit 2 for it.
var ErrUsage = errors.New("usage")

// Parse parses flags that may appear before, between or after positional
// arguments, and checks the positional count.
func Parse(fs *flag.FlagSet, args []string, minPos, maxPos int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, ErrUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) < minPos || len(pos) > maxPos {
		want := fmt.Sprintf("%d to %d arguments", minPos, maxPos)
		if minPos == maxPos {
			want = fmt.Sprintf("%d argument(s)", minPos)
		}
		fmt.Fprintf(fs.Output(), "bitmesh %s: want %s\n", fs.Name(), want)
		fs.Usage()
		return nil, ErrUsage
	}
	return pos, nil
}

// NewFlagSet returns a flag set for `bitmesh SYNOPSIS` whose usage text
// and errors go to stderr, flags shown as --name.
func NewFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: bitmesh %s\n", synopsis)
		PrintFlags(fs)
	}
	return fs
}

// PrintFlags writes fs's flags to its output as flag.PrintDefaults does,
// but with two dashes, as bitmesh's usage lines and documentation spell
// them: "--name TYPE", then the usage and any non-zero default.
func PrintFlags(fs *flag.FlagSet) {
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprint(fs.Output(), "\nFlags:\n")
			first = false
		}
		typ, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		line += "\n    \t" + strings.ReplaceAll(usage, "\n", "\n    \t")
		if !zeroDefault(f.DefValue) {
			if typ == "string" {
				line += fmt.Sprintf(" (default %q)", f.DefValue)
			} else {
				line += fmt.Sprintf(" (default %v)", f.DefValue)
			}
		}
		fmt.Fprintln(fs.Output(), line)
	})
}

func zeroDefault(v string) bool {
	switch v {
	case "", "0", "0s", "false", "[]":
		return true
	}
	return false
}

// Usagef reports a usage error the flag set's parser cannot see (a
// missing required flag, a malformed flag value): it prints "bitmesh
// NAME: MESSAGE" and the usage, and returns ErrUsage.
func Usagef(fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(fs.Output(), "bitmesh %s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.Usage()
	return ErrUsage
}

// FindCompanion finds the executable name beside self (this program's own
// path), else on PATH: the two bitmesh binaries are installed together,
// and the one beside us is the one built from the same source.
func FindCompanion(name, self string) (string, error) {
	if self != "" {
		p := filepath.Join(filepath.Dir(self), name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is neither next to %s nor on PATH", name, filepath.Base(self))
	}
	return p, nil
}

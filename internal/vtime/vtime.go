// Package vtime gives an ordinary binary the *testing.T that
// testing/synctest needs to run code in virtual time, for `bitmesh sim
// run`.
//
// synctest.Test needs a *testing.T, which only the testing package makes;
// outside `go test` the one way to get one is testing.MainStart, which Go
// documents as internal to go test and free to change between releases.
// This package is the only place that relies on it, with its own test, so
// a Go upgrade that breaks it fails here first.
package vtime

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sync"
	"testing"
	"time"
)

var mainMu sync.Mutex // testing.M is process-global state

// WithT calls f with a *testing.T (pass it to synctest.Test) and returns
// once f has. A failure reported through t (t.Fatal, t.Error) comes back
// as an error. The testing package's own output goes to stderr.
func WithT(f func(t *testing.T)) error {
	mainMu.Lock()
	defer mainMu.Unlock()
	ran := false
	tests := []testing.InternalTest{{Name: "VirtualTime", F: func(t *testing.T) {
		ran = true
		f(t)
	}}}
	m := testing.MainStart(deps{}, tests, nil, nil, nil)
	// MainStart registered the test flags; mark them parsed so that Run
	// does not read this program's own arguments as test flags.
	if !flag.Parsed() {
		if err := flag.CommandLine.Parse(nil); err != nil {
			return err
		}
	}
	// Inside a test binary (bitmesh's own tests) -test.run may filter
	// tests out: select ours for this run, then put it back. The outer
	// run's log and profile files are its own: the inner run would
	// truncate them and close the outer one's log (go test passes
	// -test.testlogfile whenever results are cacheable, failing the test).
	for name, value := range map[string]string{
		"test.run": "^VirtualTime$", "test.testlogfile": "", "test.cpuprofile": "", "test.memprofile": "",
		"test.blockprofile": "", "test.mutexprofile": "", "test.trace": "", "test.coverprofile": "",
	} {
		f := flag.Lookup(name)
		if f == nil {
			continue
		}
		old := f.Value.String()
		if err := f.Value.Set(value); err != nil {
			return err
		}
		defer f.Value.Set(old)
	}
	stdout := os.Stdout
	os.Stdout = os.Stderr // Run prints PASS/FAIL on stdout
	code := m.Run()
	os.Stdout = stdout
	switch {
	case !ran:
		return errors.New("vtime: the testing package did not run the function")
	case code != 0:
		return fmt.Errorf("vtime: virtual-time run failed (exit code %d)", code)
	}
	return nil
}

// deps implements the testing package's testDeps for MainStart, doing only
// what running one plain test needs.
type deps struct{}

type corpusEntry = struct {
	Parent     string
	Path       string
	Data       []byte
	Values     []any
	Generation int
	IsSeed     bool
}

func (deps) ImportPath() string { return "github.com/bitmesh/bitmesh/internal/vtime" }
func (deps) ModulePath() string { return "github.com/bitmesh/bitmesh" }
func (deps) MatchString(pat, str string) (bool, error) {
	return regexp.MatchString(pat, str)
}
func (deps) SetPanicOnExit0(bool)                        {}
func (deps) StartCPUProfile(io.Writer) error             { return errors.New("vtime: no profiling") }
func (deps) StopCPUProfile()                             {}
func (deps) StartTestLog(io.Writer)                      {}
func (deps) StopTestLog() error                          { return nil }
func (deps) WriteProfileTo(string, io.Writer, int) error { return errors.New("vtime: no profiling") }
func (deps) ResetCoverage()                              {}
func (deps) SnapshotCoverage()                           {}
func (deps) CheckCorpus([]any, []reflect.Type) error     { return nil }
func (deps) RunFuzzWorker(func(corpusEntry) error) error { return errors.New("vtime: no fuzzing") }
func (deps) ReadCorpus(string, []reflect.Type) ([]corpusEntry, error) {
	return nil, errors.New("vtime: no fuzzing")
}
func (deps) CoordinateFuzzing(time.Duration, int64, time.Duration, int64, int, []corpusEntry, []reflect.Type, string, string) error {
	return errors.New("vtime: no fuzzing")
}
func (deps) InitRuntimeCoverage() (string, func(string, string) (string, error), func() float64) {
	return "", nil, nil
}

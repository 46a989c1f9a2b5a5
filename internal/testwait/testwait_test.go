package testwait

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fatalT records Fatalf instead of ending the test.
type fatalT struct {
	testing.TB
	msg string
}

func (f *fatalT) Helper() {}
func (f *fatalT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f) // stop For as FailNow would
}

func TestForReturnsOnceMet(t *testing.T) {
	calls := 0
	For(t, time.Second, time.Millisecond, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if calls != 3 {
		t.Fatalf("f called %d times, want 3", calls)
	}
}

func TestForFailsWithLastError(t *testing.T) {
	ft := &fatalT{TB: t}
	func() {
		defer func() { _ = recover() }()
		For(ft, 20*time.Millisecond, time.Millisecond, func() error { return errors.New("still down") })
	}()
	if !strings.Contains(ft.msg, "still down") {
		t.Fatalf("Fatalf message %q, want f's last error", ft.msg)
	}
}

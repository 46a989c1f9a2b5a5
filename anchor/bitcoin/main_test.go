package bitcoin

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no goroutine (an idle RPC connection to btcd)
// outlives the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

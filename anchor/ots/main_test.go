package ots

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no goroutine (a calendar's httptest server, an idle
// HTTP connection) outlives the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

package node

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(benchRoleEnv); role != "" {
		os.Exit(runBenchRole(role)) // BenchmarkTwoProcesses re-executes this binary
	}
	goleak.VerifyTestMain(m)
}

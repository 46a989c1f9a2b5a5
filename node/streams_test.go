package node

import "testing"

// TestLowMemoryResourceLimits: the low-memory profile holds libp2p's
// resource manager at its base limits however much RAM the machine has;
// the default profile scales them to the machine.
func TestLowMemoryResourceLimits(t *testing.T) {
	low := resourceLimits(nil, LowMemoryConfig().ResourceMemory).ToPartialLimitConfig().System
	if low.Conns != 128 || low.Memory != 128<<20 || low.FD != 256 {
		t.Errorf("low-memory system limits: %d conns, %d bytes, %d fds; want libp2p's base 128, 128 MiB, 256", low.Conns, low.Memory, low.FD)
	}
	if DefaultConfig().ResourceMemory != 0 {
		t.Errorf("default ResourceMemory %d, want 0 (scaled to the machine)", DefaultConfig().ResourceMemory)
	}
	bad := DefaultConfig()
	bad.ResourceMemory = -1
	if bad.Validate() == nil {
		t.Error("a negative ResourceMemory validated")
	}
}

package anchor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Environment of the crash-test child (see TestMain).
const (
	crashChildEnv = "ANCHOR_CRASH_CHILD" // path of the BoltStore to append to
	crashSeedEnv  = "ANCHOR_CRASH_SEED"  // seed of the child's batch sizes
	crashLogName  = "crash"
	crashCycles   = 50
)

// runCrashChild appends to the crash log until it is killed. After each
// Append or group of AppendOne calls returns it writes one line per
// acknowledged leaf, "index data", in a single write, so the parent never
// sees an ack for a leaf that was not durable.
func runCrashChild(path, seed string) error {
	n, err := strconv.ParseUint(seed, 10, 64)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(n, 0xa9c40))
	s, err := OpenBoltStore(path)
	if err != nil {
		return err
	}
	l, err := OpenLog(s, crashLogName)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	for round := 0; ; round++ {
		out.Reset()
		if round%4 == 3 {
			// Group commit: concurrent single appends.
			callers := 2 + rng.IntN(8)
			idx := make([]uint64, callers)
			errs := make([]error, callers)
			var wg sync.WaitGroup
			for c := range callers {
				wg.Go(func() { idx[c], errs[c] = l.AppendOne(fmt.Appendf(nil, "o-%d-%d-%d", n, round, c)) })
			}
			wg.Wait()
			for c := range callers {
				if errs[c] != nil {
					return errs[c]
				}
				fmt.Fprintf(&out, "%d o-%d-%d-%d\n", idx[c], n, round, c)
			}
		} else {
			size := l.Size()
			batch := make([][]byte, 1+rng.IntN(64))
			for j := range batch {
				batch[j] = fmt.Appendf(nil, "b-%d", size+uint64(j))
			}
			first, err := l.Append(batch)
			if err != nil {
				return err
			}
			if first != size {
				return fmt.Errorf("Append returned %d, want %d", first, size)
			}
			for j, d := range batch {
				fmt.Fprintf(&out, "%d %s\n", first+uint64(j), d)
			}
		}
		if _, err := os.Stdout.Write(out.Bytes()); err != nil {
			return err
		}
	}
}

// TestCrashRecovery kills a child appending to a BoltStore with SIGKILL at a
// random point, 50 times over one file, and checks after each kill that the
// log reopens, holds every acknowledged leaf with its data, and that its root
// and every stored node agree with a recomputation from the stored leaves.
func TestCrashRecovery(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	rng := rand.New(rand.NewPCG(20261124, 50))
	acked := make(map[uint64]string)
	for cycle := range crashCycles {
		// Kill after k ack lines: early (often mid first commit) to late.
		k := 1 + rng.IntN(300)
		lines, err := runAndKill(exe, path, cycle, k)
		if err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		for _, line := range lines {
			idx, data, ok := strings.Cut(line, " ")
			i, err := strconv.ParseUint(idx, 10, 64)
			if !ok || err != nil {
				t.Fatalf("cycle %d: bad ack %q", cycle, line)
			}
			if prev, dup := acked[i]; dup && prev != data {
				t.Fatalf("cycle %d: index %d acknowledged as %q and %q", cycle, i, prev, data)
			}
			acked[i] = data
		}
		checkCrashLog(t, path, cycle, acked)
	}
	t.Logf("%d cycles, %d acknowledged leaves", crashCycles, len(acked))
}

// runAndKill starts the child, reads k ack lines, kills it, and returns every
// ack line it wrote (including those written before the kill landed).
func runAndKill(exe, path string, cycle, k int) ([]string, error) {
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path, crashSeedEnv+"="+strconv.Itoa(cycle))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var lines []string
	sc := bufio.NewScanner(stdout)
	for len(lines) < k && sc.Scan() {
		lines = append(lines, sc.Text())
	}
	killErr := cmd.Process.Kill()
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	waitErr := cmd.Wait()
	if killErr != nil {
		return nil, killErr
	}
	// The child only ends by the kill; an exit status means it failed.
	var exitErr *exec.ExitError
	if !errors.As(waitErr, &exitErr) || exitErr.Exited() {
		return nil, fmt.Errorf("child did not die by SIGKILL: %v (after %d acks)", waitErr, len(lines))
	}
	return lines, sc.Err()
}

func checkCrashLog(t *testing.T, path string, cycle int, acked map[uint64]string) {
	t.Helper()
	s, err := OpenBoltStore(path)
	if err != nil {
		t.Fatalf("cycle %d: reopen store: %v", cycle, err)
	}
	defer s.Close()
	l, err := OpenLog(s, crashLogName)
	if err != nil {
		t.Fatalf("cycle %d: reopen log: %v", cycle, err)
	}
	defer l.Close()
	size := l.Size()
	leaves, err := s.Leaves(crashLogName, 0, int(size))
	if err != nil {
		t.Fatalf("cycle %d: read leaves: %v", cycle, err)
	}
	for i, want := range acked {
		if i >= size {
			t.Fatalf("cycle %d: acknowledged leaf %d lost (size %d)", cycle, i, size)
		}
		if got := string(leaves[i]); got != want {
			t.Fatalf("cycle %d: leaf %d = %q, acknowledged %q", cycle, i, got, want)
		}
	}
	root, err := l.Root()
	if err != nil {
		t.Fatal(err)
	}
	if want := refRoot(leaves); !bytes.Equal(root[:], want) {
		t.Fatalf("cycle %d: root %x, recomputed from %d leaves %x", cycle, root, size, want)
	}
	if err := l.Verify(); err != nil {
		t.Fatalf("cycle %d: %v", cycle, err)
	}
}

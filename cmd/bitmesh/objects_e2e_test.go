package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bitmesh/bitmesh/inventory"
)

// objectCLI runs the built binary; it returns stdout and the exit code.
type objectCLI struct {
	t   *testing.T
	bin string
}

func (c objectCLI) run(args ...string) (string, string, int) {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	c.t.Fatalf("%v: %v", args, err)
	return "", "", -1
}

func (c objectCLI) objects(dir string) []inventory.ObjectInfo {
	c.t.Helper()
	out, stderr, code := c.run("objects", "--data", dir, "--json")
	var list []inventory.ObjectInfo
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil {
		c.t.Fatalf("objects --json: exit %d, %q, %s", code, out, stderr)
	}
	return list
}

func writeRandom(t *testing.T, size int) (string, []byte) {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	path := filepath.Join(t.TempDir(), "firmware.bin")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, b
}

var hexID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// TestObjectsCLIContract checks `bitmesh share`, `fetch` and `objects`
// from outside, against two `bitmesh node` processes: share prints the ID
// (bare, or {"id":…} with --json), fetch on the other node writes the
// verified bytes and exits 0, objects --json lists the object on both; an
// unknown ID times out with exit 1 and a missing --out is a usage error.
func TestObjectsCLIContract(t *testing.T) {
	if testing.Short() {
		t.Log("-short: skipping the multi-process test")
		return
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	_, readyA := startNodeProc(t, dirA)
	startNodeProc(t, dirB, "--bootstrap", readyA.Addrs[0])
	cli := objectCLI{t, buildBitmesh(t)}
	path, want := writeRandom(t, 5<<20+777)

	out, stderr, code := cli.run("share", "--data", dirA, "--json", "--type", "firmware", path)
	var shared struct {
		ID string `json:"id"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &shared) != nil || !hexID.MatchString(shared.ID) {
		t.Fatalf("share --json: exit %d, stdout %q, stderr %s", code, out, stderr)
	}
	out, stderr, code = cli.run("share", "--data", dirA, "--name", "config", path)
	if code != 0 || !hexID.MatchString(strings.TrimSpace(out)) {
		t.Fatalf("share: exit %d, stdout %q, stderr %s", code, out, stderr)
	}

	dst := filepath.Join(t.TempDir(), "out.bin")
	_, stderr, code = cli.run("fetch", "--data", dirB, "--out", dst, shared.ID)
	if code != 0 {
		t.Fatalf("fetch: exit %d, stderr %s", code, stderr)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("fetch wrote %d bytes (%v), want the %d shared", len(got), err, len(want))
	}
	if !strings.Contains(stderr, "wrote "+dst) {
		t.Fatalf("fetch printed no summary on stderr: %s", stderr)
	}
	for _, dir := range []string{dirA, dirB} {
		found := false
		for _, o := range cli.objects(dir) {
			if o.ID.String() == shared.ID {
				found = o.Complete && o.Size == uint64(len(want)) && o.Type == "firmware" && o.Name == "firmware.bin"
			}
		}
		if !found {
			t.Fatalf("objects --json of %s does not list %s complete: %+v", dir, shared.ID, cli.objects(dir))
		}
	}

	out, _, code = cli.run("objects", "--data", dirB, "--counters")
	var counters inventory.Counters
	if code != 0 || json.Unmarshal([]byte(out), &counters) != nil || counters.FetchedChunks != uint64((len(want)+inventory.DefaultChunkSize-1)/inventory.DefaultChunkSize) {
		t.Fatalf("objects --counters: exit %d, %q", code, out)
	}
	unknown := strings.Repeat("ab", 32)
	if _, stderr, code := cli.run("fetch", "--data", dirB, "--out", dst+".x", "--timeout", "2s", unknown); code != 1 {
		t.Fatalf("fetch of an unknown ID: exit %d, want 1; %s", code, stderr)
	}
	if _, err := os.Stat(dst + ".x"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed fetch left %s.x behind (%v)", dst, err)
	}
	if _, _, code := cli.run("fetch", "--data", dirB, shared.ID); code != 2 {
		t.Fatalf("fetch without --out: exit %d, want 2", code)
	}
	if _, _, code := cli.run("fetch", "--data", dirB, "--out", dst, "nothex"); code != 2 {
		t.Fatalf("fetch of a malformed ID: exit %d, want 2", code)
	}
}

// TestFetchResumesAfterKill9: node B fetches a 12 MiB object from node A,
// which serves at most 2 MiB/s; B is killed with SIGKILL a third of the
// way through and started again on the same data directory. It resumes on
// its own, and the verified chunks it had acknowledged are not fetched
// again: after the restart B fetches exactly the chunks it lacked, and A
// serves in all no more than the object plus the requests B had in
// flight when it died.
func TestFetchResumesAfterKill9(t *testing.T) {
	if testing.Short() {
		t.Log("-short: skipping the multi-process test")
		return
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	_, readyA := startNodeProc(t, dirA, "--objects-serve-rate", fmt.Sprint(2<<20))
	cli := objectCLI{t, buildBitmesh(t)}
	path, want := writeRandom(t, 12<<20)
	out, stderr, code := cli.run("share", "--data", dirA, path)
	if code != 0 {
		t.Fatalf("share: exit %d: %s", code, stderr)
	}
	id := strings.TrimSpace(out)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := bitmesh(t, ctx, "node", "--data", dirB, "--no-mdns", "--no-nat",
		"--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", readyA.Addrs[0])
	if _, err := bufio.NewReader(b.stdout).ReadString('\n'); err != nil {
		t.Fatalf("node B: %v; stderr:\n%s", err, b.stderr)
	}
	fetchCtx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	fetch := exec.CommandContext(fetchCtx, cli.bin, "fetch", "--data", dirB, "--out", filepath.Join(t.TempDir(), "x"), id)
	if err := fetch.Start(); err != nil {
		t.Fatal(err)
	}
	go fetch.Wait()
	var before inventory.ObjectInfo
	waitFor(t, 30*time.Second, "B to hold a third of the object", func() bool {
		for _, o := range cli.objects(dirB) {
			before = o
			return o.Chunks > 0 && o.Have >= o.Chunks/3
		}
		return false
	})
	if before.Complete {
		t.Fatal("B completed before the kill: the serve rate did not slow A down")
	}
	b.cmd.Process.Kill() // SIGKILL: no shutdown, no flush
	b.cmd.Wait()
	stopFetch()
	t.Logf("killed B holding %d of %d chunks", before.Have, before.Chunks)

	startNodeProc(t, dirB, "--bootstrap", readyA.Addrs[0])
	var after inventory.ObjectInfo
	waitFor(t, 60*time.Second, "B to complete the object after its restart", func() bool {
		list := cli.objects(dirB)
		if len(list) == 1 {
			after = list[0]
		}
		return after.Complete
	})
	t.Logf("after the restart: resumed %d verified chunks, fetched %d, of %d", after.Resumed, after.Fetched, after.Chunks)
	if after.Resumed < before.Have {
		t.Fatalf("B resumed with %d chunks, but held %d acknowledged before the kill", after.Resumed, before.Have)
	}
	if after.Fetched != int64(after.Chunks-after.Resumed) {
		t.Fatalf("B fetched %d chunks after the restart; it lacked %d", after.Fetched, after.Chunks-after.Resumed)
	}
	var served int64
	for _, o := range cli.objects(dirA) {
		served = o.Served
	}
	// What B had asked for and not yet acknowledged when it died (its
	// requests in flight to A) may be served again; nothing more.
	dc := inventory.DefaultConfig()
	if bound := int64(after.Chunks + dc.RequestsPerPeer*dc.ChunksPerRequest); served > bound {
		t.Fatalf("A served %d chunks of a %d-chunk object: more than the requests in flight at the kill were fetched twice", served, after.Chunks)
	}
	t.Logf("A served %d chunks in all for %d", served, after.Chunks)
	dst := filepath.Join(t.TempDir(), "out.bin")
	if _, stderr, code := cli.run("fetch", "--data", dirB, "--out", dst, id); code != 0 {
		t.Fatalf("fetch after the restart: exit %d: %s", code, stderr)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, want) {
		t.Fatal("the resumed object differs from the shared one")
	}
}

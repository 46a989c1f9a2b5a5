package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
)

// softMemoryLimit sets the Go runtime's soft memory limit to 3/4 of the
// memory the process may use, unless GOMEMLIMIT chose one: the machine's
// RAM, or its cgroup's limit if lower (inside a container /proc/meminfo
// shows the host's). A big swarm's heap is mostly live, and the default
// GC target (twice the live heap) would ask for more memory than there is
// long before the swarm needs it.
func softMemoryLimit() (int64, bool) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0, false
	}
	root := os.DirFS("/")
	total, ok := availableMemory(root)
	if !ok {
		return 0, false
	}
	limit := total / 4 * 3
	debug.SetMemoryLimit(limit)
	return limit, true
}

// availableMemory returns the lower of MemTotal and the process's cgroup
// memory limit, read from root (the file system root).
func availableMemory(root fs.FS) (int64, bool) {
	f, err := root.Open("proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	total, err := memTotal(f)
	if err != nil {
		return 0, false
	}
	if limit, ok := cgroupMemoryLimit(root); ok && limit < total {
		return limit, true
	}
	return total, true
}

// memTotal reads MemTotal from /proc/meminfo's format, in bytes.
func memTotal(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "MemTotal:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || kb <= 0 || kb > 1<<40 {
				return 0, fmt.Errorf("meminfo: bad MemTotal %q", f[1])
			}
			return kb << 10, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("meminfo: no MemTotal line")
}

// cgroupMemoryLimit returns the tightest memory limit of the process's
// cgroup and its ancestors: memory.max under cgroup v2, and
// memory.limit_in_bytes under v1's memory controller. Inside a container
// with its own cgroup namespace the process's path reads "/", and the
// container's limit is at the mount's top, so that is read too. Values of
// 2^62 and up mean no limit.
func cgroupMemoryLimit(root fs.FS) (int64, bool) {
	b, err := fs.ReadFile(root, "proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	best, found := int64(0), false
	consider := func(file string) {
		v, err := fs.ReadFile(root, file)
		if err != nil {
			return
		}
		s := strings.TrimSpace(string(v))
		n, err := strconv.ParseInt(s, 10, 64)
		if s == "max" || err != nil || n <= 0 || n >= 1<<62 {
			return
		}
		if !found || n < best {
			best, found = n, true
		}
	}
	for line := range strings.Lines(string(b)) {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		var dir, file string
		switch {
		case parts[0] == "0" && parts[1] == "":
			dir, file = "sys/fs/cgroup", "memory.max"
		case hasController(parts[1], "memory"):
			dir, file = "sys/fs/cgroup/memory", "memory.limit_in_bytes"
		default:
			continue
		}
		for p := path.Clean("/" + parts[2]); ; p = path.Dir(p) {
			consider(path.Join(dir, p, file))
			if p == "/" {
				break
			}
		}
	}
	return best, found
}

func hasController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

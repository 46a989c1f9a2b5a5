package main

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestMemTotal(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"MemTotal:       24579412 kB\nMemFree:  1 kB\n", 24579412 << 10, true},
		{"MemFree:  1 kB\nMemTotal: 1024 kB\n", 1 << 20, true},
		{"MemTotal: lots kB\n", 0, false},
		{"MemTotal: -5 kB\n", 0, false},
		{"MemTotal: 5 MB\n", 0, false},
		{"", 0, false},
	} {
		got, err := memTotal(strings.NewReader(c.in))
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("memTotal(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestAvailableMemory(t *testing.T) {
	const meminfo = "MemTotal:       24579412 kB\n"
	host := int64(24579412) << 10
	for _, c := range []struct {
		name  string
		files fstest.MapFS
		want  int64
		ok    bool
	}{
		{"no meminfo", fstest.MapFS{}, 0, false},
		{"no cgroup file: the host's RAM", fstest.MapFS{"proc/meminfo": {Data: []byte(meminfo)}}, host, true},
		{"cgroup v2 limit", fstest.MapFS{
			"proc/meminfo":                        {Data: []byte(meminfo)},
			"proc/self/cgroup":                    {Data: []byte("0::/app/worker\n")},
			"sys/fs/cgroup/app/worker/memory.max": {Data: []byte("2147483648\n")},
		}, 2 << 30, true},
		{"cgroup v2: an ancestor's limit is tighter", fstest.MapFS{
			"proc/meminfo":                        {Data: []byte(meminfo)},
			"proc/self/cgroup":                    {Data: []byte("0::/app/worker\n")},
			"sys/fs/cgroup/app/worker/memory.max": {Data: []byte("max\n")},
			"sys/fs/cgroup/app/memory.max":        {Data: []byte("1073741824\n")},
		}, 1 << 30, true},
		{"cgroup v2 in a namespace: the path is / and the limit at the top", fstest.MapFS{
			"proc/meminfo":             {Data: []byte(meminfo)},
			"proc/self/cgroup":         {Data: []byte("0::/\n")},
			"sys/fs/cgroup/memory.max": {Data: []byte("536870912\n")},
		}, 512 << 20, true},
		{"cgroup v1 memory controller", fstest.MapFS{
			"proc/meminfo":     {Data: []byte(meminfo)},
			"proc/self/cgroup": {Data: []byte("5:cpu,cpuacct:/x\n4:memory:/docker/abc\n0::/\n")},
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": {Data: []byte("3221225472\n")},
		}, 3 << 30, true},
		{"cgroup v1 unlimited (2^63 rounded to a page)", fstest.MapFS{
			"proc/meminfo":     {Data: []byte(meminfo)},
			"proc/self/cgroup": {Data: []byte("4:memory:/\n")},
			"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte("9223372036854771712\n")},
		}, host, true},
		{"a limit above the RAM counts for nothing", fstest.MapFS{
			"proc/meminfo":             {Data: []byte(meminfo)},
			"proc/self/cgroup":         {Data: []byte("0::/\n")},
			"sys/fs/cgroup/memory.max": {Data: []byte("1099511627776\n")},
		}, host, true},
		{"garbage in memory.max is ignored", fstest.MapFS{
			"proc/meminfo":             {Data: []byte(meminfo)},
			"proc/self/cgroup":         {Data: []byte("0::/\n")},
			"sys/fs/cgroup/memory.max": {Data: []byte("lots\n")},
		}, host, true},
	} {
		got, ok := availableMemory(c.files)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: availableMemory = %d, %v; want %d, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

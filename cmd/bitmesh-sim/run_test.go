package main

import (
	"strings"
	"testing"
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

// Package version reads what the Go toolchain recorded about the running
// binary (runtime/debug.ReadBuildInfo): the module version, the VCS
// revision it was built from and the Go version. `bitmesh version` prints
// it, and nodes announce it to their peers as the libp2p user agent.
package version

import (
	"runtime"
	"runtime/debug"
)

// Info describes the running binary.
type Info struct {
	// Version is the main module's version: a tag or pseudo-version
	// when built with `go install module@version`, "(devel)" when built
	// from a checkout.
	Version string `json:"version"`
	// Revision is the VCS commit the binary was built from, empty when
	// the toolchain did not record one (go test, -buildvcs=false).
	Revision string `json:"revision,omitempty"`
	// Modified reports uncommitted changes in the checkout at build time.
	Modified bool `json:"modified,omitempty"`
	// GoVersion is the toolchain that built the binary.
	GoVersion string `json:"go_version"`
}

// Get returns the running binary's build information. Without any (a
// binary built without module support), Version is "(devel)".
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "(devel)", GoVersion: runtime.Version()}
	}
	return fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) Info {
	info := Info{Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if info.Version == "" {
		info.Version = "(devel)" // test binaries record no main version
	}
	if info.GoVersion == "" {
		info.GoVersion = runtime.Version()
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// ShortRevision is the revision's first 12 hex digits, with "+dirty"
// when the checkout had uncommitted changes; empty without a revision.
func (i Info) ShortRevision() string {
	r := i.Revision
	if len(r) > 12 {
		r = r[:12]
	}
	if r != "" && i.Modified {
		r += "+dirty"
	}
	return r
}

// UserAgent is what a node announces through libp2p identify:
// "bitmesh/VERSION (rev REVISION)", or "bitmesh/VERSION" without a
// revision, e.g. "bitmesh/(devel)".
func (i Info) UserAgent() string {
	ua := "bitmesh/" + i.Version
	if r := i.ShortRevision(); r != "" {
		ua += " (rev " + r + ")"
	}
	return ua
}

// UserAgent is Get().UserAgent().
func UserAgent() string { return Get().UserAgent() }

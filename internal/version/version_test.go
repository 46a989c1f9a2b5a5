package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFromBuildInfo(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		name string
		bi   debug.BuildInfo
		want Info
		ua   string
	}{
		{"tagged, clean", debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.1.0"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"}}},
			Info{Version: "v0.1.0", Revision: rev, GoVersion: "go1.26.0"}, "bitmesh/v0.1.0 (rev 0123456789ab)"},
		{"checkout, dirty", debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"}}},
			Info{Version: "(devel)", Revision: rev, Modified: true, GoVersion: "go1.26.0"}, "bitmesh/(devel) (rev 0123456789ab+dirty)"},
		{"nothing recorded", debug.BuildInfo{},
			Info{Version: "(devel)", GoVersion: runtime.Version()}, "bitmesh/(devel)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := fromBuildInfo(&tc.bi)
			if got != tc.want {
				t.Fatalf("fromBuildInfo = %+v, want %+v", got, tc.want)
			}
			if ua := got.UserAgent(); ua != tc.ua {
				t.Fatalf("UserAgent = %q, want %q", ua, tc.ua)
			}
		})
	}
}

func TestGet(t *testing.T) {
	i := Get()
	if i.GoVersion != runtime.Version() || i.Version == "" {
		t.Fatalf("Get() = %+v", i)
	}
	if !strings.HasPrefix(UserAgent(), "bitmesh/") {
		t.Fatalf("UserAgent() = %q", UserAgent())
	}
}

package buildinfo

import (
	"errors"
	"maps"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestResolvePrefersStampedValuesThenTheToolchainsRecord pins the order of
// the sources: -X values, then the module version and VCS revision go build
// recorded, then Devel and no commit.
func TestResolvePrefersStampedValuesThenTheToolchainsRecord(t *testing.T) {
	vcs := func(rev, modified string) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified},
		}}
	}
	for _, c := range []struct {
		name            string
		version, commit string
		bi              *debug.BuildInfo
		wantV, wantC    string
	}{
		{"stamped", "v0.1.0", "abc123", vcs("def456", "true"), "v0.1.0", "abc123"},
		{"go build in a clean checkout", "", "", vcs("def456", "false"), Devel, "def456"},
		{"go build with uncommitted changes", "", "", vcs("def456", "true"), Devel, "def456-dirty"},
		{"go install module@version", "", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.2.0"}}, "v0.2.0", ""},
		{"no build info", "", "", nil, Devel, ""},
		{"only the version stamped", "v0.1.0", "", vcs("def456", "false"), "v0.1.0", "def456"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := resolve(c.version, c.commit, c.bi)
			if got.Version != c.wantV || got.Commit != c.wantC {
				t.Errorf("version %q commit %q, want %q %q", got.Version, got.Commit, c.wantV, c.wantC)
			}
			if got.GoVersion != runtime.Version() || got.Platform != runtime.GOOS+"/"+runtime.GOARCH {
				t.Errorf("go %q platform %q", got.GoVersion, got.Platform)
			}
		})
	}
}

// TestTextNamesProgramVersionCommitAndGo: the first line is "<program>
// <version>" (what a script reads); an unknown commit says so.
func TestTextNamesProgramVersionCommitAndGo(t *testing.T) {
	i := Info{Version: "v0.1.0", Commit: "abc123", GoVersion: "go1.26.8", Platform: "linux/arm64"}
	want := "kc-event-emitter v0.1.0\ncommit abc123\ngo     go1.26.8 linux/arm64\n"
	if got := i.Text("kc-event-emitter"); got != want {
		t.Errorf("Text:\n%s\nwant:\n%s", got, want)
	}
	i.Commit = ""
	if got := i.Text("x"); !strings.Contains(got, "\ncommit unknown\n") {
		t.Errorf("Text without a commit:\n%s", got)
	}
}

// TestRegisterExposesBuildInfoGaugeOnce: the gauge is 1 with the build's
// labels; registering it twice on one registry is an error, not a panic.
func TestRegisterExposesBuildInfoGaugeOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	i := Info{Version: "v0.1.0", Commit: "abc123", GoVersion: "go1.26.8"}
	if err := Register(reg, i); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || mfs[0].GetName() != "kc_event_emitter_build_info" || mfs[0].GetType() != dto.MetricType_GAUGE || len(mfs[0].Metric) != 1 {
		t.Fatalf("gathered %v, want the one gauge kc_event_emitter_build_info", mfs)
	}
	m := mfs[0].Metric[0]
	labels := map[string]string{}
	for _, l := range m.Label {
		labels[l.GetName()] = l.GetValue()
	}
	if want := map[string]string{"version": "v0.1.0", "commit": "abc123", "goversion": "go1.26.8"}; !maps.Equal(labels, want) || m.GetGauge().GetValue() != 1 {
		t.Errorf("labels %v value %v, want %v and 1", labels, m.GetGauge().GetValue(), want)
	}
	err = Register(reg, i)
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) || !strings.Contains(err.Error(), "kc_event_emitter_build_info") {
		t.Errorf("second Register: %v, want an AlreadyRegisteredError naming the metric", err)
	}
}

// Package buildinfo says which build of kc-event-emitter is running: the
// version and commit stamped at link time, the Go version it was built with,
// and the kc_event_emitter_build_info metric that carries them.
//
// The build (scripts/build.sh, used by make build, make dist and
// deploy/Dockerfile) sets the two variables:
//
//	go build -ldflags "-X github.com/kc-event-emitter/kc-event-emitter/emitter/buildinfo.Version=v0.1.0 \
//	    -X github.com/kc-event-emitter/kc-event-emitter/emitter/buildinfo.Commit=<sha>"
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Version and Commit are set with -ldflags -X by the build; a plain go build
// leaves them empty and Read falls back to what the Go toolchain recorded.
var (
	Version string
	Commit  string
)

// Devel is the version of a build that was not stamped and has no module
// version (go build or go run in a checkout).
const Devel = "devel"

// Info is one build's identity.
type Info struct {
	Version   string // e.g. v0.1.0, v0.0.0-135-g1cc7cee, or Devel
	Commit    string // the full commit id, or "" when unknown
	GoVersion string // runtime.Version(), e.g. go1.26.8
	Platform  string // GOOS/GOARCH, e.g. linux/amd64
}

// Read returns the running binary's Info.
func Read() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(Version, Commit, bi)
}

// resolve prefers the stamped values, then the module version and the VCS
// revision the toolchain recorded in bi (nil when there is none).
func resolve(version, commit string, bi *debug.BuildInfo) Info {
	i := Info{Version: version, Commit: commit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		if i.Commit == "" {
			modified := false
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					i.Commit = s.Value
				case "vcs.modified":
					modified = s.Value == "true"
				}
			}
			if i.Commit != "" && modified {
				i.Commit += "-dirty"
			}
		}
	}
	if i.Version == "" {
		i.Version = Devel
	}
	return i
}

// Text is what `<program> version` prints: the program and version on the
// first line, then the commit and the Go version.
func (i Info) Text(program string) string {
	commit := i.Commit
	if commit == "" {
		commit = "unknown"
	}
	return fmt.Sprintf("%s %s\ncommit %s\ngo     %s %s\n", program, i.Version, commit, i.GoVersion, i.Platform)
}

// LogAttrs are the build's fields for a log line: version, commit and
// go_version.
func (i Info) LogAttrs() []any {
	return []any{"version", i.Version, "commit", i.Commit, "go_version", i.GoVersion}
}

// Register registers the gauge kc_event_emitter_build_info{version, commit,
// goversion}, always 1, on reg, as Prometheus's own *_build_info series.
func Register(reg prometheus.Registerer, i Info) error {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "kc_event_emitter",
		Name:      "build_info",
		Help:      "Always 1; its labels name the running build: version, commit and the Go version it was built with.",
		ConstLabels: prometheus.Labels{
			"version":   i.Version,
			"commit":    i.Commit,
			"goversion": i.GoVersion,
		},
	})
	g.Set(1)
	if err := reg.Register(g); err != nil {
		return fmt.Errorf("register kc_event_emitter_build_info: %w", err)
	}
	return nil
}

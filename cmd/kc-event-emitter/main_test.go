package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/buildinfo"
)

// TestVersionPrintsTheStampedBuild: `version`, `--version` and `-version`
// print the stamped version, the commit and the Go version; an argument
// after them is a usage error (exit 2).
func TestVersionPrintsTheStampedBuild(t *testing.T) {
	defer func(v, c string) { buildinfo.Version, buildinfo.Commit = v, c }(buildinfo.Version, buildinfo.Commit)
	buildinfo.Version, buildinfo.Commit = "v9.8.7-1-gabc1234", "abc1234def"
	want := buildinfo.Read().Text("kc-event-emitter")
	if !strings.HasPrefix(want, "kc-event-emitter v9.8.7-1-gabc1234\ncommit abc1234def\ngo     go") {
		t.Fatalf("Text is %q", want)
	}
	for _, c := range []struct {
		args         []string
		code         int
		stdout, errs string
	}{
		{[]string{"version"}, 0, want, ""},
		{[]string{"--version"}, 0, want, ""},
		{[]string{"-version"}, 0, want, ""},
		{[]string{"version", "--json"}, 2, "", `unexpected argument "--json"`},
		{[]string{"--version", "x"}, 2, "", `unexpected argument "x"`},
	} {
		var out, errOut bytes.Buffer
		code := dispatch(c.args, strings.NewReader(""), &out, &errOut)
		if code != c.code || out.String() != c.stdout || !strings.Contains(errOut.String(), c.errs) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d, %q, %q", c.args, code, out.String(), errOut.String(), c.code, c.stdout, c.errs)
		}
	}
}

package nametmpl

import (
	"strings"
	"testing"
)

func under(r rune) rune {
	if r == '.' {
		return '_'
	}
	return r
}

func TestExpandFillsPlaceholdersCleansValuesAndNamesEmptyOnesUnknown(t *testing.T) {
	for _, c := range []struct{ tmpl, realm, kind, want string }{
		{"kc.events", "acme", "event", "kc.events"},
		{"kc.{{realm}}.{{kind}}", "acme", "admin-event", "kc.acme.admin-event"},
		{"kc.{{ realm }}", "a.b", "event", "kc.a_b"},
		{"kc.{{realm}}", "", "event", "kc.unknown"},
	} {
		tm, err := Parse(c.tmpl, "topic")
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.tmpl, err)
		}
		if got := tm.Expand(c.realm, c.kind, under); got != c.want {
			t.Errorf("Expand of %q with %q, %q = %q, want %q", c.tmpl, c.realm, c.kind, got, c.want)
		}
	}
}

func TestParseRefusesUnclosedAndUnknownPlaceholdersNamingThem(t *testing.T) {
	for tmpl, want := range map[string]string{
		"kc.{{realm":    `topic "kc.{{realm": an unclosed {{`,
		"kc.{{tenant}}": "unknown placeholder {{tenant}}",
	} {
		if _, err := Parse(tmpl, "topic"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", tmpl, err, want)
		}
	}
}

func TestLiteralsAndFixedTellTheTextAroundThePlaceholders(t *testing.T) {
	tm, _ := Parse("a.{{realm}}.b", "topic")
	if got := strings.Join(tm.Literals(), "|"); got != "a.|.b" || tm.Fixed() {
		t.Errorf("Literals = %q, Fixed = %v; want \"a.|.b\", false", got, tm.Fixed())
	}
	if tm, _ := Parse("plain", "topic"); !tm.Fixed() {
		t.Error("a template without placeholders is not Fixed")
	}
}

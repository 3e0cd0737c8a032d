// Package nametmpl holds the name templates of the Kafka and NATS sinks:
// literal text with the placeholders {{realm}} (the realm's name) and
// {{kind}} (event or admin-event), as in "keycloak.{{realm}}.{{kind}}".
package nametmpl

import (
	"fmt"
	"strings"
)

// Template is a parsed name template.
type Template struct {
	parts []string // literal parts at even indexes, placeholder names at odd ones
}

// Parse parses s; what names the template in errors ("kafka topic").
func Parse(s, what string) (Template, error) {
	var t Template
	rest := s
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			t.parts = append(t.parts, rest)
			return t, nil
		}
		j := strings.Index(rest[i:], "}}")
		if j < 0 {
			return Template{}, fmt.Errorf("%s %q: an unclosed {{", what, s)
		}
		name := strings.TrimSpace(rest[i+2 : i+j])
		if name != "realm" && name != "kind" {
			return Template{}, fmt.Errorf("%s %q: unknown placeholder {{%s}}; want {{realm}} or {{kind}}", what, s, name)
		}
		t.parts = append(t.parts, rest[:i], name)
		rest = rest[i+j+2:]
	}
}

// Literals returns the literal parts of t, in order.
func (t Template) Literals() []string {
	var out []string
	for i := 0; i < len(t.parts); i += 2 {
		out = append(out, t.parts[i])
	}
	return out
}

// Has tells whether t holds the placeholder name (realm or kind).
func (t Template) Has(name string) bool {
	for i := 1; i < len(t.parts); i += 2 {
		if t.parts[i] == name {
			return true
		}
	}
	return false
}

// Fixed tells whether t has no placeholder.
func (t Template) Fixed() bool { return len(t.parts) == 1 }

// Expand fills t with realm and kind. Each value goes through clean (which
// maps a character the name cannot hold to another); an empty value is
// "unknown".
func (t Template) Expand(realm, kind string, clean func(rune) rune) string {
	if t.Fixed() {
		return t.parts[0]
	}
	var b strings.Builder
	for i, p := range t.parts {
		if i%2 == 0 {
			b.WriteString(p)
			continue
		}
		v := kind
		if p == "realm" {
			v = realm
		}
		if v == "" {
			v = "unknown"
		}
		b.WriteString(strings.Map(clean, v))
	}
	return b.String()
}

package checkpoint

import (
	"bytes"
	"testing"
)

// FuzzDecodeState parses arbitrary snapshots (in cluster mode they come
// from a table anyone with the state's grants can write): no panic, and a
// snapshot it accepts has every stream with a window.
func FuzzDecodeState(f *testing.F) {
	for _, s := range []string{``, `{"v":1}`, `{"v":1,"streams":{"Event/r":{"c":{"t":5,"id":"x"},"w":{"x":{"t":5,"u":9}}}}}`,
		`{"v":1,"streams":{"k":null}}`, `{"v":2}`, `[`, `{"v":1,"streams":{"k":{}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := DecodeState(b)
		if err != nil {
			return
		}
		for key, s := range st.Streams {
			if s == nil || s.Window == nil {
				t.Fatalf("accepted %q with stream %q without a window", b, key)
			}
		}
	})
}

// FuzzDecodeJournal parses arbitrary journal text: no panic, and never more
// entries than lines.
func FuzzDecodeJournal(f *testing.F) {
	for _, s := range []string{"", `{"s":"Event/r","id":"a","t":1,"uid":2}` + "\n", `{"s":"x"}` + "\n" + `{"s":`, "\n\n", `1`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := DecodeJournal(b)
		if err != nil {
			return
		}
		if lines := bytes.Count(b, []byte("\n")) + 1; len(entries) > lines {
			t.Fatalf("%d entries from %d lines of %q", len(entries), lines, b)
		}
	})
}

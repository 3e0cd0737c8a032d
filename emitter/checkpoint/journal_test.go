package checkpoint

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestJournalKeepsAppendedEntriesUntilReset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.json.journal")
	j, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	a := []JournalEntry{{Stream: "Event/r1", ID: `e"1`, Time: 10, UID: 100}, {Stream: "AdminEvent/r1", ID: "a1", Time: 11, UID: 101}}
	b := []JournalEntry{{Stream: "Event/r2", ID: "e2", Time: 12, UID: 102}}
	if err := j.Append(a); err != nil {
		t.Fatal(err)
	}
	if err := j.Append(b); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := append(a, b...); !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadJournal = %+v, want %+v", got, want)
	}
	if err := j.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := j.Append(b); err != nil {
		t.Fatal(err)
	}
	if got, _ := ReadJournal(path); !reflect.DeepEqual(got, b) {
		t.Fatalf("after Reset and Append: %+v, want %+v", got, b)
	}
}

func TestReadJournalIgnoresATornLastLineAndRejectsOtherBadLines(t *testing.T) {
	dir := t.TempDir()
	good := `{"s":"Event/r","id":"e1","t":1,"uid":5}` + "\n"
	for _, tt := range []struct {
		name, text string
		want       int
		err        string
	}{
		{"missing file", "", 0, ""},
		{"torn last line", good + `{"s":"Event/r","id":"e2","t`, 1, ""},
		{"bad middle line", good + "garbage\n" + good, 0, "line 2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			if tt.text != "" {
				os.WriteFile(path, []byte(tt.text), 0o600)
			}
			got, err := ReadJournal(path)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want it to name %q", err, tt.err)
				}
				return
			}
			if err != nil || len(got) != tt.want {
				t.Fatalf("ReadJournal = %d entries, %v; want %d", len(got), err, tt.want)
			}
		})
	}
}

package checkpoint

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadMissingFileIsEmptyState(t *testing.T) {
	st, err := Load(filepath.Join(t.TempDir(), "none.json"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != Version || st.Streams == nil || len(st.Streams) != 0 {
		t.Fatalf("got %+v, want empty state of version %d", st, Version)
	}
}

func TestSaveThenLoadRoundTripsEveryField(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.json")
	want := &State{Version: Version, Streams: map[string]*Stream{
		"Event/r1": {
			Cursor: Cursor{Time: 1700000000123, ID: "b"},
			Floor:  1700000000000,
			Window: map[string]Entry{
				"a": {Time: 1700000000100, UID: 42, Acked: true},
				"b": {Time: 1700000000123, UID: 43},
			},
		},
		"AdminEvent/r1": {Window: map[string]Entry{}},
	}}
	if err := Save(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("loaded %+v, saved %+v", got, want)
	}
}

func TestSaveReplacesAndLeavesNoTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cp.json")
	for i := range 3 {
		st := &State{Streams: map[string]*Stream{"Event/r": {Floor: int64(i), Window: map[string]Entry{}}}}
		if err := Save(path, st); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "cp.json" {
		t.Fatalf("directory holds %v, want only cp.json", entries)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Streams["Event/r"].Floor != 2 {
		t.Fatalf("floor %d, want the last saved 2", got.Streams["Event/r"].Floor)
	}
}

func TestLoadRejectsBadFilesNamingThePath(t *testing.T) {
	cases := []struct {
		name, content, wantErr string
	}{
		{"not json", "{", "parse checkpoint"},
		{"other version", `{"version":99,"streams":{}}`, "version 99"},
		{"null stream", `{"version":1,"streams":{"Event/r":null}}`, `stream "Event/r" is null`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cp.json")
			if err := os.WriteFile(path, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v, want one containing %q and the path", err, c.wantErr)
			}
		})
	}
}

func TestSaveIntoMissingDirectoryFails(t *testing.T) {
	err := Save(filepath.Join(t.TempDir(), "no", "cp.json"), &State{})
	if err == nil {
		t.Fatal("Save into a missing directory succeeded")
	}
}

// TestSaveWritesJSONThatLoadReadsForAnyID pins the hand-written encoder of
// Save and Append: ids with quotes, control characters, non-ASCII and
// invalid UTF-8 come back as encoding/json reads them.
func TestSaveWritesJSONThatLoadReadsForAnyID(t *testing.T) {
	ids := []string{"plain-uuid", `q"uote`, `back\slash`, "tab\tnew\nline\x00", "é ü 日本", "bad\xffutf8", ""}
	st := &State{Version: Version, Streams: map[string]*Stream{}}
	var entries []JournalEntry
	for i, id := range ids {
		st.Streams["Event/"+id] = &Stream{Cursor: Cursor{Time: int64(i), ID: id}, Floor: -int64(i),
			Window: map[string]Entry{id: {Time: int64(i), UID: int64(1000 + i), Acked: i%2 == 0}, "x" + id: {UID: 1}}}
		entries = append(entries, JournalEntry{Stream: "Event/" + id, ID: id, Time: int64(i), UID: int64(i)})
	}
	var want State
	data, _ := json.Marshal(st)
	json.Unmarshal(data, &want) // what encoding/json makes of the same state
	path := filepath.Join(t.TempDir(), "cp.json")
	if err := Save(path, st); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, &want) {
		t.Fatalf("loaded %+v\nwant %+v", got, &want)
	}
	j, err := OpenJournal(JournalPath(path))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if err := j.Append(entries); err != nil {
		t.Fatal(err)
	}
	gotJ, err := ReadJournal(JournalPath(path))
	if err != nil {
		t.Fatal(err)
	}
	var wantJ []JournalEntry
	data, _ = json.Marshal(entries)
	json.Unmarshal(data, &wantJ)
	if !reflect.DeepEqual(gotJ, wantJ) {
		t.Fatalf("journal read %+v\nwant %+v", gotJ, wantJ)
	}
}

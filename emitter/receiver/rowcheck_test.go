package receiver

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCheckRow puts arbitrary rows into a JSON-lines store: whatever checkRow
// lets through is written as one line of valid JSON in valid UTF-8 that the
// store reads back, and whatever it refuses is refused with ErrRejected.
func FuzzCheckRow(f *testing.F) {
	for _, tc := range hostileRows() {
		f.Add(tc.row.Type, tc.row.RealmID, tc.row.Payload)
	}
	f.Fuzz(func(t *testing.T, typ, realm string, payload []byte) {
		path := filepath.Join(t.TempDir(), "events.jsonl")
		s, err := OpenJSONL(path, StoreOptions{Logger: quiet, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		r := Row{UID: 1, Kind: "Event", ID: "id", Type: typ, RealmID: realm, Payload: payload}
		checked := checkRow(r)
		_, err = s.Put(t.Context(), r)
		s.Close()
		if checked != nil {
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("checkRow refused it (%v) but Put answered %v", checked, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("checkRow let it through but Put failed: %v", err)
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		data := string(raw)
		if strings.Count(data, "\n") != 1 || !utf8.ValidString(data) || !json.Valid([]byte(data)) {
			t.Fatalf("the store wrote %q, not one line of valid JSON in valid UTF-8", data)
		}
		again, err := OpenJSONL(path, StoreOptions{Logger: quiet})
		if err != nil {
			t.Fatalf("the store cannot read back its line: %v", err)
		}
		again.Close()
	})
}

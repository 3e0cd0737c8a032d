package receiver

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCheckRow puts arbitrary rows into a JSON-lines store: whatever checkRow
// lets through is written as one line of valid JSON in valid UTF-8 that the
// store can read back, and whatever it refuses is refused with ErrRejected.
func FuzzCheckRow(f *testing.F) {
	for _, tc := range hostileRows() {
		f.Add(tc.row.Type, tc.row.RealmID, tc.row.Payload)
	}
	path := filepath.Join(f.TempDir(), "events.jsonl")
	s, err := OpenJSONL(path, StoreOptions{Logger: quiet, NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	file, err := os.Open(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { file.Close() })
	var uid int64
	f.Fuzz(func(t *testing.T, typ, realm string, payload []byte) {
		uid++
		r := Row{UID: uid, Kind: "Event", ID: "id", Type: typ, RealmID: realm, Payload: payload}
		checked := checkRow(r)
		_, err := s.Put(t.Context(), r)
		if checked != nil {
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("checkRow refused it (%v) but Put answered %v", checked, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("checkRow let it through but Put failed: %v", err)
		}
		// The store wrote one line at the end of the file: read it.
		raw, err := io.ReadAll(file)
		if err != nil {
			t.Fatal(err)
		}
		data := string(raw)
		if strings.Count(data, "\n") != 1 || !strings.HasSuffix(data, "\n") || !utf8.ValidString(data) || !json.Valid(raw) {
			t.Fatalf("the store wrote %q, not one line of valid JSON in valid UTF-8", data)
		}
		var back struct{ UID *int64 } // what the store reads when it opens
		if err := json.Unmarshal(raw, &back); err != nil || back.UID == nil || *back.UID != uid {
			t.Fatalf("the store cannot read back its line: %v", err)
		}
	})
}

package emitter

import (
	"database/sql"
	"encoding/json"
	"log/slog"
	"testing"
)

// FuzzStoredDetails turns arbitrary stored details text (the database's
// details_json, written by Keycloak or anyone with access) into an event's
// details: no panic, nothing lost (text that is not a JSON object is kept
// whole under details_raw, counted), and the event still encodes to valid
// JSON.
func FuzzStoredDetails(f *testing.F) {
	for _, s := range []string{`{"a":"b"}`, `{"n":1,"o":{"x":[1,2]},"z":null}`, `[1]`, `"text"`, `{`, ` `, `{"\u0000":"\ud800"}`, "{\"k\":\"\xff\"}", `null`} {
		f.Add(s)
	}
	enc, err := NewEncoder(FormatJSON, Numbering201)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p := &dbSource{log: slog.New(slog.DiscardHandler)}
		got := p.details(KindEvent, "id", sql.NullString{String: raw, Valid: true})
		var obj map[string]json.RawMessage
		isObject := json.Unmarshal([]byte(raw), &obj) == nil && obj != nil
		switch {
		case isObject && len(got) != len(obj):
			t.Fatalf("details of %q: %d keys, want the object's %d", raw, len(got), len(obj))
		case !isObject && p.malformed.Load() == 1 && got[malformedDetailsKey] != raw:
			t.Fatalf("details of %q: %q under %s, want the text whole", raw, got[malformedDetailsKey], malformedDetailsKey)
		}
		body, err := enc.Encode(nil, Record{Event: &Event{ID: "id", Type: "LOGIN", Details: got}})
		if err != nil || !json.Valid(body) {
			t.Fatalf("event with the details of %q encodes to %q, %v: not valid JSON", raw, body, err)
		}
	})
}

package emitter

import (
	"database/sql"
	"encoding/json"
	"log/slog"
	"maps"
	"strings"
	"testing"
)

// FuzzStoredDetails turns arbitrary stored details text (the database's
// details_json, written by Keycloak or anyone with access) into an event's
// details: no panic, nothing lost (text that is not a JSON object is kept
// whole under details_raw, counted), and the event still encodes to valid
// JSON.
func FuzzStoredDetails(f *testing.F) {
	for _, s := range []string{`{"a":"b"}`, ` { "a" : "b" , "a" : "c", "é\\u00e9" : [ 1 , {"x":"]"} ] , "n" : -1.5e3 , "t" : true } `, "{\"k\":\"\xe9t\xe9\"}", `{"n":1,"o":{"x":[1,2]},"z":null}`, `[1]`, `"text"`, `{`, ` `, `{"\u0000":"\ud800"}`, "{\"k\":\"\xff\"}", `null`} {
		f.Add(s)
	}
	enc, err := NewEncoder(FormatJSON, Numbering201)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p := &dbSource{log: slog.New(slog.DiscardHandler)}
		got := p.details(KindEvent, "id", sql.NullString{String: raw, Valid: true})
		want, isObject := slowDetails(raw)
		switch {
		case isObject && !maps.Equal(got, want):
			t.Fatalf("details of %q: %q, want what encoding/json reads, %q", raw, got, want)
		case !isObject && strings.TrimSpace(raw) != "" && (p.malformed.Load() != 1 || got[malformedDetailsKey] != raw || len(got) != 1):
			t.Fatalf("details of %q: %q (%d counted), want the text whole under %s, counted", raw, got, p.malformed.Load(), malformedDetailsKey)
		}
		body, err := enc.Encode(nil, Record{Event: &Event{ID: "id", Type: "LOGIN", Details: got}})
		if err != nil || !json.Valid(body) {
			t.Fatalf("event with the details of %q encodes to %q, %v: not valid JSON", raw, body, err)
		}
	})
}

// slowDetails is what parseDetails must return, read with encoding/json
// alone: the object into raw values, each value then into a string (null:
// "", not a string: its JSON text). ok is false when raw is not an object.
func slowDetails(raw string) (_ map[string]string, ok bool) {
	var fields map[string]json.RawMessage
	if json.Unmarshal([]byte(raw), &fields) != nil || fields == nil {
		return nil, false
	}
	out := map[string]string{}
	for k, v := range fields {
		var s string
		switch {
		case string(v) == "null":
		case json.Unmarshal(v, &s) == nil:
		default:
			s = string(v)
		}
		out[k] = s
	}
	return out, true
}

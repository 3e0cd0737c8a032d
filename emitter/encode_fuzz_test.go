package emitter

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sanitized returns rec as both formats carry it: every string valid
// UTF-8, details keys that became equal merged in key order (the last
// wins, as in the payload).
func sanitized(rec Record) Record {
	clean := func(m map[string]string) map[string]string {
		out := map[string]string{}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			out[validUTF8(k)] = validUTF8(m[k])
		}
		return out
	}
	if e := rec.Event; e != nil {
		return Record{Event: &Event{ID: validUTF8(e.ID), UID: e.UID, Time: e.Time, Type: validUTF8(e.Type),
			RealmID: validUTF8(e.RealmID), ClientID: validUTF8(e.ClientID), UserID: validUTF8(e.UserID),
			SessionID: validUTF8(e.SessionID), IPAddress: validUTF8(e.IPAddress), Error: validUTF8(e.Error),
			Details: clean(e.Details)}}
	}
	a, d := rec.Admin, rec.Admin.AuthDetails
	return Record{Admin: &AdminEvent{ID: validUTF8(a.ID), UID: a.UID, Time: a.Time, RealmID: validUTF8(a.RealmID),
		AuthDetails: AuthDetails{RealmID: validUTF8(d.RealmID), ClientID: validUTF8(d.ClientID),
			UserID: validUTF8(d.UserID), IPAddress: validUTF8(d.IPAddress), Username: validUTF8(d.Username)},
		OperationType: validUTF8(a.OperationType), ResourceType: validUTF8(a.ResourceType),
		ResourcePath: validUTF8(a.ResourcePath), Representation: validUTF8(a.Representation),
		Error: validUTF8(a.Error), Details: clean(a.Details)}}
}

// FuzzEncode encodes arbitrary events in both formats and every numbering:
// no panic, an error only for an operation type Keycloak does not have,
// and the payload decodes back to the event.
func FuzzEncode(f *testing.F) {
	join := func(fields ...string) string { return strings.Join(fields, "\x1e") }
	f.Add(false, int64(1), int64(2), join("id", "LOGIN", "realm", "client", "user", "session", "127.0.0.1", "",
		"CREATE", "USER", "users/1", `{"a":1}`, "admin", "username", "alice", "k\xff", "v\x00"))
	f.Add(true, int64(-1), int64(0), join("", "", "", "", "", "", "", "err\n"))
	f.Add(true, int64(1)<<62, int64(-5), join("\xff\xfe", "NOPE", "r", "c", "u", "s", "ip", "\u2028",
		"PATCH", "ORGANIZATION", "p", "r", "n", "a\xffb", "1", "a\xfeb", "2"))
	f.Fuzz(func(t *testing.T, admin bool, uid, ms int64, fields string) {
		// The text fields, separated by U+001E (so that fuzzing mutates
		// one argument, not seventeen).
		var v [17]string
		copy(v[:], strings.Split(fields, "\x1e"))
		id, typ, realm, client, user, session, ip, errText := v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]
		op, res, path, repr, username, k1, v1, k2, v2 := v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15], v[16]
		details := map[string]string{k1: v1, k2: v2}
		var rec Record
		if admin {
			rec = Record{Admin: &AdminEvent{ID: id, UID: uid, Time: ms, RealmID: realm,
				AuthDetails:   AuthDetails{RealmID: realm, ClientID: client, UserID: user, IPAddress: ip, Username: username},
				OperationType: op, ResourceType: res, ResourcePath: path, Representation: repr, Error: errText, Details: details}}
		} else {
			rec = Record{Event: &Event{ID: id, UID: uid, Time: ms, Type: typ, RealmID: realm, ClientID: client,
				UserID: user, SessionID: session, IPAddress: ip, Error: errText, Details: details}}
		}
		_, opErr := operationType(op)
		for _, f := range []Format{FormatJSON, FormatFlatBuffer} {
			for _, n := range numberings {
				enc, err := NewEncoder(f, n)
				if err != nil {
					t.Fatal(err)
				}
				out, err := enc.Encode(nil, rec)
				if err != nil {
					if f == FormatFlatBuffer && admin && opErr != nil {
						continue
					}
					t.Fatalf("%s/%s: %v", f, n, err)
				}
				if !json.Valid(out) {
					t.Fatalf("%s/%s: invalid JSON %q", f, n, out)
				}
				got, gotF, err := DecodePayload(out, n)
				if err != nil || gotF != f {
					t.Fatalf("%s/%s: payload %q decodes to %v, %v", f, n, out, gotF, err)
				}
				if g, w := recordString(got), recordString(asReceived(sanitized(rec), f, n)); g != w {
					t.Fatalf("%s/%s: decoded\n %s\nwant\n %s", f, n, g, w)
				}
				if f == FormatJSON {
					break // JSON does not depend on the numbering
				}
				checkPayload(t, n, rec, out)
			}
		}
	})
}

// FuzzDecodePayload feeds receivers' decoder arbitrary bodies: no panic,
// and what decodes encodes again to a payload that decodes the same.
func FuzzDecodePayload(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join(goldenDir, "*.golden"))
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"type":"Event","obj":"AAAAAA=="}`))
	f.Add([]byte(`{"uid":1,"operationType":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		rec, f, err := DecodePayload(body, Numbering26)
		if err != nil {
			return
		}
		enc, err := NewEncoder(f, Numbering26)
		if err != nil {
			t.Fatal(err)
		}
		out, err := enc.Encode(nil, rec)
		if err != nil {
			t.Fatalf("decoded %s does not encode: %v", recordString(rec), err)
		}
		again, _, err := DecodePayload(out, Numbering26)
		if err != nil {
			t.Fatalf("re-encoded payload %q: %v", out, err)
		}
		if g, w := recordString(again), recordString(asReceived(sanitized(rec), f, Numbering26)); g != w {
			t.Fatalf("round trip\n %s\nwant\n %s", g, w)
		}
	})
}

// FuzzParseAPIEvent feeds the admin API parser arbitrary JSON: no panic,
// and what parses encodes in both formats.
func FuzzParseAPIEvent(f *testing.F) {
	f.Add([]byte(`{"id":"e","time":1,"type":"LOGIN","realmId":"r","details":{"a":"b"}}`))
	f.Add([]byte(`{"time":1,"realmId":"r","authDetails":{"userId":"u"},"operationType":"CREATE","resourceType":"USER"}`))
	f.Add([]byte(`{"operationType":null,"resourcePath":"x","details":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		rec, err := ParseAPIEvent(raw)
		if err != nil {
			return
		}
		if rec.Event == nil && rec.Admin == nil {
			t.Fatalf("%q parsed to an empty Record", raw)
		}
		var op string
		if rec.Admin != nil {
			op = rec.Admin.OperationType
		}
		_, opErr := operationType(op)
		for _, f := range []Format{FormatJSON, FormatFlatBuffer} {
			enc, _ := NewEncoder(f, "")
			if _, err := enc.Encode(nil, rec); err != nil && !(f == FormatFlatBuffer && opErr != nil) {
				t.Fatalf("%s: %q parsed to %s, which does not encode: %v", f, raw, recordString(rec), err)
			}
		}
	})
}

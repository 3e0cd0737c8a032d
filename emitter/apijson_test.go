package emitter

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseAPIEventKeepsEveryFieldOfBothRepresentations(t *testing.T) {
	for _, tt := range []struct {
		name, raw string
		want      Record
	}{
		{
			"EventRepresentation of Keycloak 26.2 with id",
			`{"id":"e-1","time":1763900000123,"type":"LOGIN","realmId":"r-1","clientId":"account","userId":"u-1",
			  "sessionId":"s-1","ipAddress":"127.0.0.1","details":{"auth_method":"openid-connect","username":"alice"}}`,
			Record{Event: &Event{ID: "e-1", Time: 1763900000123, Type: "LOGIN", RealmID: "r-1", ClientID: "account",
				UserID: "u-1", SessionID: "s-1", IPAddress: "127.0.0.1",
				Details: map[string]string{"auth_method": "openid-connect", "username": "alice"}}},
		},
		{
			"EventRepresentation of an older Keycloak: no id, an error, no details",
			`{"time":5,"type":"LOGIN_ERROR","realmId":"r-1","clientId":"c","ipAddress":"::1","error":"user_not_found"}`,
			Record{Event: &Event{Time: 5, Type: "LOGIN_ERROR", RealmID: "r-1", ClientID: "c", IPAddress: "::1",
				Error: "user_not_found", Details: map[string]string{}}},
		},
		{
			"AdminEventRepresentation",
			`{"id":"a-1","time":7,"realmId":"r-1","authDetails":{"realmId":"m","clientId":"c-uuid","userId":"u-admin","ipAddress":"10.0.0.1"},
			  "operationType":"UPDATE","resourceType":"USER","resourcePath":"users/u-1","representation":"{\"enabled\":false}",
			  "error":"e","details":{"k":"v"}}`,
			Record{Admin: &AdminEvent{ID: "a-1", Time: 7, RealmID: "r-1",
				AuthDetails:   AuthDetails{RealmID: "m", ClientID: "c-uuid", UserID: "u-admin", IPAddress: "10.0.0.1"},
				OperationType: "UPDATE", ResourceType: "USER", ResourcePath: "users/u-1",
				Representation: `{"enabled":false}`, Error: "e", Details: map[string]string{"k": "v"}}},
		},
		{
			"AdminEventRepresentation with nulls",
			`{"time":8,"realmId":"r-1","authDetails":null,"operationType":"DELETE","resourceType":"GROUP","representation":null,"details":null}`,
			Record{Admin: &AdminEvent{Time: 8, RealmID: "r-1", OperationType: "DELETE", ResourceType: "GROUP",
				Details: map[string]string{}}},
		},
		{
			"a JSON wire payload of kc-event-emitter reads back (extAuthDetails, username)",
			`{"id":null,"time":9,"realmId":"r","extAuthDetails":{"realmId":"m","clientId":null,"userId":"u","ipAddress":null,"username":"admin"},
			  "operationType":"ACTION","resourceType":"CUSTOM","resourcePath":null,"representation":null,"error":null,"details":{},"uid":42}`,
			Record{Admin: &AdminEvent{Time: 9, RealmID: "r", AuthDetails: AuthDetails{RealmID: "m", UserID: "u", Username: "admin"},
				OperationType: "ACTION", ResourceType: "CUSTOM", Details: map[string]string{}}},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAPIEvent([]byte(tt.raw))
			if err != nil {
				t.Fatal(err)
			}
			if g, w := recordString(got), recordString(tt.want); g != w {
				t.Fatalf("got\n %s\nwant\n %s", g, w)
			}
		})
	}
}

func TestParseAPIEventRejectsWhatIsNotAnEventObject(t *testing.T) {
	for _, raw := range []string{``, `null`, `[]`, `"LOGIN"`, `{"time":"yesterday"}`, `{"details":{"a":[1]}}`, `{"time":1`} {
		if r, err := ParseAPIEvent([]byte(raw)); err == nil || !strings.Contains(err.Error(), "event JSON") {
			t.Errorf("ParseAPIEvent(%q) = %s, %v; want an error", raw, recordString(r), err)
		}
	}
}

// recordedAPIFiles are the admin API responses of a real Keycloak that
// apisource's tests recorded (KCEE_RECORD_API=1) from a realm filled by
// scripts/seed, and the kind of every event in each.
var recordedAPIFiles = []struct {
	path string
	kind Kind
}{
	{filepath.Join("..", "testdata", "api", "keycloak-26.5.6-events.json"), KindEvent},
	{filepath.Join("..", "testdata", "api", "keycloak-26.5.6-admin-events.json"), KindAdminEvent},
}

// recordedAPIEvents returns the representations of one recorded response.
func recordedAPIEvents(t *testing.T, path string) []json.RawMessage {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(raws) == 0 {
		t.Fatalf("%s holds no events", path)
	}
	return raws
}

// apiRepresentation writes r back as the admin API's representation, with
// the keys the API leaves out when empty left out.
func apiRepresentation(r Record) map[string]any {
	m := map[string]any{}
	set := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	details := func(d map[string]string) {
		if len(d) == 0 {
			return
		}
		dm := map[string]any{}
		for k, v := range d {
			dm[k] = v
		}
		m["details"] = dm
	}
	if e := r.Event; e != nil {
		set("id", e.ID)
		m["time"] = float64(e.Time)
		set("type", e.Type)
		set("realmId", e.RealmID)
		set("clientId", e.ClientID)
		set("userId", e.UserID)
		set("sessionId", e.SessionID)
		set("ipAddress", e.IPAddress)
		set("error", e.Error)
		details(e.Details)
		return m
	}
	a := r.Admin
	set("id", a.ID)
	m["time"] = float64(a.Time)
	set("realmId", a.RealmID)
	auth := map[string]any{}
	for k, v := range map[string]string{"realmId": a.AuthDetails.RealmID, "clientId": a.AuthDetails.ClientID,
		"userId": a.AuthDetails.UserID, "ipAddress": a.AuthDetails.IPAddress} {
		if v != "" {
			auth[k] = v
		}
	}
	if len(auth) > 0 {
		m["authDetails"] = auth
	}
	set("operationType", a.OperationType)
	set("resourceType", a.ResourceType)
	set("resourcePath", a.ResourcePath)
	set("representation", a.Representation)
	set("error", a.Error)
	details(a.Details)
	return m
}

// TestParseAPIEventKeepsEveryFieldOfRecordedKeycloakResponses parses every
// EventRepresentation and AdminEventRepresentation that a real Keycloak
// 26.5.6 returned: each becomes a Record of the right kind that, written
// back as a representation, equals what the server sent (so no key the
// server sends is dropped or misread).
func TestParseAPIEventKeepsEveryFieldOfRecordedKeycloakResponses(t *testing.T) {
	for _, f := range recordedAPIFiles {
		t.Run(filepath.Base(f.path), func(t *testing.T) {
			for i, raw := range recordedAPIEvents(t, f.path) {
				rec, err := ParseAPIEvent(raw)
				if err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
				if rec.Kind() != f.kind {
					t.Fatalf("event %d is a %s, want %s: %s", i, rec.Kind(), f.kind, raw)
				}
				if rec.ID() == "" || rec.Time() == 0 || rec.RealmID() == "" || rec.TypeName() == "" {
					t.Fatalf("event %d lacks its id, time, realm or type: %s", i, recordString(rec))
				}
				var want map[string]any
				if err := json.Unmarshal(raw, &want); err != nil {
					t.Fatal(err)
				}
				if got := apiRepresentation(rec); !reflect.DeepEqual(got, want) {
					g, _ := json.Marshal(got)
					t.Fatalf("event %d written back\n %s\nthe server sent\n %s", i, g, raw)
				}
			}
		})
	}
}

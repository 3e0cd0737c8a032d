package emitter

import (
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

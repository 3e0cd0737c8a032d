package fbs

import (
	"testing"

	"github.com/kc-event-emitter/kc-event-emitter/fbs/events201"
	"github.com/kc-event-emitter/kc-event-emitter/fbs/events26"
	"github.com/kc-event-emitter/kc-event-emitter/fbs/eventsbridge"
)

// The counts and values below are facts of the original's releases (see
// docs of package fbs); a change to a schema that moves one is a wire break.
func TestEnumNumberingsMatchTheOriginalReleases(t *testing.T) {
	for _, tt := range []struct {
		numbering             string
		eventNames, resNames  map[string]int
		eventCount, resCount  int
		eventChecks, resCheck map[string]int
	}{
		{
			numbering: "20.1", eventCount: 105, resCount: 34,
			eventNames: names(events201.EnumValuesEventType), resNames: names(events201.EnumValuesResourceType),
			eventChecks: map[string]int{"LOGIN": 0, "VERIFY_PROFILE": 30, "CLIENT_INITIATED_ACCOUNT_LINKING_ERROR": 87,
				"PUSHED_AUTHORIZATION_REQUEST_ERROR": 103, "UNKNOWN": 104},
			resCheck: map[string]int{"REALM": 0, "USER": 12, "CLIENT_SCOPE_CLIENT_MAPPING": 25, "CUSTOM": 32, "UNKNOWN": 33},
		},
		{
			numbering: "bridge", eventCount: 87, resCount: 32,
			eventNames: names(eventsbridge.EnumValuesEventType), resNames: names(eventsbridge.EnumValuesResourceType),
			eventChecks: map[string]int{"LOGIN": 0, "VERIFY_EMAIL_ERROR": 29, "REMOVE_TOTP": 30,
				"CLIENT_INITIATED_ACCOUNT_LINKING_ERROR": 81, "PERMISSION_TOKEN_ERROR": 85, "UNKNOWN": 86},
			resCheck: map[string]int{"USER": 12, "CLUSTER_NODE": 25, "AUTHORIZATION_POLICY": 30, "UNKNOWN": 31},
		},
		{
			numbering: "26", eventCount: 119, resCount: 38,
			eventNames: names(events26.EnumValuesEventType), resNames: names(events26.EnumValuesResourceType),
			eventChecks: map[string]int{"LOGIN": 0, "PUSHED_AUTHORIZATION_REQUEST_ERROR": 103,
				"USER_DISABLED_BY_PERMANENT_LOCKOUT": 104, "INVITE_ORG_ERROR": 117, "UNKNOWN": 118},
			resCheck: map[string]int{"REQUIRED_ACTION_CONFIG": 8, "REQUIRED_ACTION": 9, "USER": 13, "ORGANIZATION": 35,
				"ORGANIZATION_MEMBERSHIP": 36, "UNKNOWN": 37},
		},
	} {
		t.Run(tt.numbering, func(t *testing.T) {
			if len(tt.eventNames) != tt.eventCount || len(tt.resNames) != tt.resCount {
				t.Errorf("%d EventType and %d ResourceType values, want %d and %d",
					len(tt.eventNames), len(tt.resNames), tt.eventCount, tt.resCount)
			}
			if tt.eventNames["UNKNOWN"] != tt.eventCount-1 || tt.resNames["UNKNOWN"] != tt.resCount-1 {
				t.Errorf("UNKNOWN is not the last value")
			}
			for name, want := range tt.eventChecks {
				if got, ok := tt.eventNames[name]; !ok || got != want {
					t.Errorf("EventType %s = %d (present %v), want %d", name, got, ok, want)
				}
			}
			for name, want := range tt.resCheck {
				if got, ok := tt.resNames[name]; !ok || got != want {
					t.Errorf("ResourceType %s = %d (present %v), want %d", name, got, ok, want)
				}
			}
		})
	}
}

func TestEveryNumberingHasTheFourOperationTypes(t *testing.T) {
	for _, m := range []map[string]int{names(events201.EnumValuesOperationType),
		names(eventsbridge.EnumValuesOperationType), names(events26.EnumValuesOperationType)} {
		want := map[string]int{"CREATE": 0, "UPDATE": 1, "DELETE": 2, "ACTION": 3}
		if len(m) != len(want) {
			t.Fatalf("OperationType %v, want %v", m, want)
		}
		for k, v := range want {
			if m[k] != v {
				t.Fatalf("OperationType %v, want %v", m, want)
			}
		}
	}
}

func names[T ~int8](m map[string]T) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = int(v)
	}
	return out
}

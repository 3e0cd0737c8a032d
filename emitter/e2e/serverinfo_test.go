package e2e

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"testing"

	"github.com/kc-event-emitter/kc-event-emitter/emitter"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
	"github.com/kc-event-emitter/kc-event-emitter/fbs/events201"
	"github.com/kc-event-emitter/kc-event-emitter/fbs/events26"
	"github.com/kc-event-emitter/kc-event-emitter/fbs/eventsbridge"
)

// numberingValues is what one FlatBuffer numbering defines, and how to read
// the type fields back from a finished buffer with the code flatc generated
// from that numbering's schema.
type numberingValues struct {
	numbering          emitter.Numbering
	events, resources  map[string]int
	eventType, resType func(buf []byte) int
}

func values[T ~int8](m map[string]T) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = int(v)
	}
	return out
}

var numberings = []numberingValues{
	{emitter.NumberingBridge, values(eventsbridge.EnumValuesEventType), values(eventsbridge.EnumValuesResourceType),
		func(b []byte) int { return int(eventsbridge.GetRootAsEvent(b, 0).Type()) },
		func(b []byte) int { return int(eventsbridge.GetRootAsAdminEvent(b, 0).ResourceType()) }},
	{emitter.Numbering201, values(events201.EnumValuesEventType), values(events201.EnumValuesResourceType),
		func(b []byte) int { return int(events201.GetRootAsEvent(b, 0).Type()) },
		func(b []byte) int { return int(events201.GetRootAsAdminEvent(b, 0).ResourceType()) }},
	{emitter.Numbering26, values(events26.EnumValuesEventType), values(events26.EnumValuesResourceType),
		func(b []byte) int { return int(events26.GetRootAsEvent(b, 0).Type()) },
		func(b []byte) int { return int(events26.GetRootAsAdminEvent(b, 0).ResourceType()) }},
}

// serverEnums returns the event and resource type names the running
// Keycloak lists in GET /admin/serverinfo (enums.eventType, enums.resourceType).
func serverEnums(t *testing.T, kc testenv.Keycloak) (events, resources []string) {
	t.Helper()
	var info struct {
		SystemInfo struct{ Version string }
		Enums      map[string][]string
	}
	newKCAdmin(t, kc).do(t, "GET", "/admin/serverinfo", nil, &info)
	events, resources = info.Enums["eventType"], info.Enums["resourceType"]
	if len(events) < 50 || len(resources) < 20 {
		t.Fatalf("Keycloak %s's serverinfo lists %d event types and %d resource types", info.SystemInfo.Version, len(events), len(resources))
	}
	return events, resources
}

// encode returns the payload of r in format f and numbering n.
func encode(t *testing.T, f emitter.Format, n emitter.Numbering, r emitter.Record) []byte {
	t.Helper()
	enc, err := emitter.NewEncoder(f, n)
	if err != nil {
		t.Fatal(err)
	}
	out, err := enc.Encode(nil, r)
	if err != nil {
		t.Fatalf("encode %+v: %v", r, err)
	}
	return out
}

// flatBuffer returns the finished FlatBuffer inside a FLATBUFFER payload.
func flatBuffer(t *testing.T, payload []byte) []byte {
	t.Helper()
	var c struct{ Type, Obj string }
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatalf("container %s: %v", payload, err)
	}
	b, err := base64.StdEncoding.DecodeString(c.Obj)
	if err != nil {
		t.Fatalf("container obj: %v", err)
	}
	return b
}

// TestEveryLiveKeycloakTypeNameIsCarriedByJSONAndNumberedByEachFlatBuffer
// reads the event and resource types the running Keycloak defines
// (/admin/serverinfo) and encodes an event of each: JSON carries the name
// unchanged; each FlatBuffer numbering writes the value its schema defines
// for the name (read back with that schema's flatc code), and UNKNOWN only
// for a name the numbering lacks. It logs the names each numbering lacks.
func TestEveryLiveKeycloakTypeNameIsCarriedByJSONAndNumberedByEachFlatBuffer(t *testing.T) {
	kc := testenv.KeycloakEnv(t)
	events, resources := serverEnums(t, kc)
	for _, name := range events {
		var got struct{ Type string }
		r := emitter.Record{Event: &emitter.Event{ID: "id", Time: 1, Type: name, RealmID: "r"}}
		if err := json.Unmarshal(encode(t, emitter.FormatJSON, "", r), &got); err != nil || got.Type != name {
			t.Errorf("JSON of event type %s carries type %q (%v)", name, got.Type, err)
		}
	}
	for _, name := range resources {
		var got struct{ ResourceType string }
		r := emitter.Record{Admin: &emitter.AdminEvent{ID: "id", Time: 1, RealmID: "r", OperationType: "ACTION", ResourceType: name}}
		if err := json.Unmarshal(encode(t, emitter.FormatJSON, "", r), &got); err != nil || got.ResourceType != name {
			t.Errorf("JSON of resource type %s carries resourceType %q (%v)", name, got.ResourceType, err)
		}
	}
	for _, nv := range numberings {
		t.Run(string(nv.numbering), func(t *testing.T) {
			var lackEvents, lackResources []string
			check := func(kind, name string, defined map[string]int, got int, lacking *[]string) {
				want, ok := defined[name]
				if !ok {
					want = defined["UNKNOWN"]
					*lacking = append(*lacking, name)
				}
				if got != want {
					t.Errorf("%s %s is written as %d, want %d (defined %v)", kind, name, got, want, ok)
				}
			}
			for _, name := range events {
				r := emitter.Record{Event: &emitter.Event{ID: "id", Time: 1, Type: name, RealmID: "r"}}
				check("event type", name, nv.events, nv.eventType(flatBuffer(t, encode(t, emitter.FormatFlatBuffer, nv.numbering, r))), &lackEvents)
			}
			for _, name := range resources {
				r := emitter.Record{Admin: &emitter.AdminEvent{ID: "id", Time: 1, RealmID: "r", OperationType: "ACTION", ResourceType: name}}
				check("resource type", name, nv.resources, nv.resType(flatBuffer(t, encode(t, emitter.FormatFlatBuffer, nv.numbering, r))), &lackResources)
			}
			if slices.Contains(events, "UNKNOWN") || slices.Contains(resources, "UNKNOWN") {
				t.Errorf("Keycloak defines a type named UNKNOWN: it cannot be told from the numbering's UNKNOWN")
			}
			t.Logf("Keycloak %s, numbering %s: %d of %d event types and %d of %d resource types are sent as UNKNOWN: %v %v",
				kc.Version, nv.numbering, len(lackEvents), len(events), len(lackResources), len(resources), lackEvents, lackResources)
		})
	}
}

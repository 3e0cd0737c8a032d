package fbs

import (
	"testing"

	"github.com/kc-event-emitter/kc-event-emitter/fbs/events201"
	"github.com/kc-event-emitter/kc-event-emitter/fbs/events26"
	"github.com/kc-event-emitter/kc-event-emitter/fbs/eventsbridge"
)

// misread counts, for the names of the sender's numbering (UNKNOWN left
// out), how a receiver built from another numbering reads the values: under
// the same name, under another type's name, as its UNKNOWN, or as a value
// its enum has no name for.
func misread(sent map[string]int, read map[int]string) (same, other, unknown, none int) {
	for name, v := range sent {
		if name == "UNKNOWN" {
			continue
		}
		switch got, ok := read[v]; {
		case !ok:
			none++
		case got == name:
			same++
		case got == "UNKNOWN":
			unknown++
		default:
			other++
		}
	}
	return same, other, unknown, none
}

func byValue(m map[string]int) map[int]string {
	out := make(map[int]string, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

// TestAReceiverOfAnotherNumberingMisreadsTypesSilently pins the figures the
// README gives: FlatBuffer enums carry numbers, so a receiver compiled from
// another release's schema reads a number under whatever name its own enum
// gives it, or under none, and nothing fails. The default numbering 20.1
// read by keycloak-bridge's decoder (the bridge numbering): of 104 event
// types 56 under another type's name, 1 as UNKNOWN, 17 under no name; of 33
// resource types 6 under another name, 1 as UNKNOWN, 1 under no name.
func TestAReceiverOfAnotherNumberingMisreadsTypesSilently(t *testing.T) {
	ev := map[string]map[string]int{"bridge": names(eventsbridge.EnumValuesEventType),
		"20.1": names(events201.EnumValuesEventType), "26": names(events26.EnumValuesEventType)}
	res := map[string]map[string]int{"bridge": names(eventsbridge.EnumValuesResourceType),
		"20.1": names(events201.EnumValuesResourceType), "26": names(events26.EnumValuesResourceType)}
	for _, tt := range []struct {
		kind, sender, receiver               string
		size, same, other, unknown, noneWant int
	}{
		{"event", "20.1", "bridge", 104, 30, 56, 1, 17},
		{"resource", "20.1", "bridge", 33, 25, 6, 1, 1},
		{"event", "26", "20.1", 118, 104, 0, 1, 13},
		{"resource", "26", "20.1", 37, 8, 25, 1, 3},
		{"event", "bridge", "20.1", 86, 30, 56, 0, 0},
	} {
		t.Run(tt.kind+" types, "+tt.sender+" read as "+tt.receiver, func(t *testing.T) {
			m := ev
			if tt.kind == "resource" {
				m = res
			}
			same, other, unknown, none := misread(m[tt.sender], byValue(m[tt.receiver]))
			if same+other+unknown+none != tt.size || same != tt.same || other != tt.other || unknown != tt.unknown || none != tt.noneWant {
				t.Errorf("%d names: %d read the same, %d under another name, %d as UNKNOWN, %d under none; want %d: %d, %d, %d, %d",
					same+other+unknown+none, same, other, unknown, none, tt.size, tt.same, tt.other, tt.unknown, tt.noneWant)
			}
		})
	}
}

package emitter

import (
	"encoding/base64"
	"fmt"
	"sync"

	flatbuffers "github.com/google/flatbuffers/go"

	fb "github.com/kc-event-emitter/kc-event-emitter/fbs/events201"
	"github.com/kc-event-emitter/kc-event-emitter/fbs/events26"
	"github.com/kc-event-emitter/kc-event-emitter/fbs/eventsbridge"
)

// enums are the EventType, ResourceType and OperationType values of one
// numbering, read from the code flatc generated from its schema.
type enums struct {
	numbering       Numbering
	eventValue      map[string]int8
	eventName       map[int8]string
	eventUnknown    int8
	resourceValue   map[string]int8
	resourceName    map[int8]string
	resourceUnknown int8
}

// operationValue and operationName are the same in every numbering.
var (
	operationValue = map[string]int8{"CREATE": 0, "UPDATE": 1, "DELETE": 2, "ACTION": 3}
	operationName  = map[int8]string{0: "CREATE", 1: "UPDATE", 2: "DELETE", 3: "ACTION"}
)

func newEnums[E, R ~int8](n Numbering, events map[string]E, resources map[string]R) *enums {
	t := &enums{numbering: n, eventValue: map[string]int8{}, eventName: map[int8]string{},
		resourceValue: map[string]int8{}, resourceName: map[int8]string{}}
	for name, v := range events {
		t.eventValue[name], t.eventName[int8(v)] = int8(v), name
	}
	for name, v := range resources {
		t.resourceValue[name], t.resourceName[int8(v)] = int8(v), name
	}
	t.eventUnknown, t.resourceUnknown = t.eventValue["UNKNOWN"], t.resourceValue["UNKNOWN"]
	return t
}

// The tables are immutable once built; they are built on first use.
var (
	enums201    = sync.OnceValue(func() *enums { return newEnums(Numbering201, fb.EnumValuesEventType, fb.EnumValuesResourceType) })
	enumsBridge = sync.OnceValue(func() *enums {
		return newEnums(NumberingBridge, eventsbridge.EnumValuesEventType, eventsbridge.EnumValuesResourceType)
	})
	enums26 = sync.OnceValue(func() *enums {
		return newEnums(Numbering26, events26.EnumValuesEventType, events26.EnumValuesResourceType)
	})
)

// enumsOf returns the enum values of numbering n.
func enumsOf(n Numbering) (*enums, error) {
	switch n {
	case Numbering201, "":
		return enums201(), nil
	case NumberingBridge:
		return enumsBridge(), nil
	case Numbering26:
		return enums26(), nil
	}
	_, err := ParseNumbering(string(n))
	return nil, err
}

// eventType returns the value of Keycloak's event type name; a name the
// numbering lacks (or none) is UNKNOWN.
func (t *enums) eventType(name string) int8 {
	if v, ok := t.eventValue[name]; ok {
		return v
	}
	return t.eventUnknown
}

// resourceType returns the value of a resource type name: 0 when unset, as
// the original wrote a missing one, UNKNOWN when the numbering lacks it.
func (t *enums) resourceType(name string) int8 {
	if name == "" {
		return 0
	}
	if v, ok := t.resourceValue[name]; ok {
		return v
	}
	return t.resourceUnknown
}

// operationType returns the value of an operation type name: 0 when unset,
// as the original wrote a missing one. Keycloak has no other names, and the
// enum no UNKNOWN, so another name is an error.
func operationType(name string) (int8, error) {
	if name == "" {
		return 0, nil
	}
	if v, ok := operationValue[name]; ok {
		return v, nil
	}
	return 0, fmt.Errorf("operation type %q: want CREATE, UPDATE, DELETE or ACTION", name)
}

// flatBufferEncoder writes the FLATBUFFER format of the original: the JSON
// container {"type":"Event"|"AdminEvent","obj":"<standard base64>"} around a
// finished FlatBuffer (no file identifier, no size prefix) of the schema in
// fbs/, built with the flatc-generated builder functions. Unset strings are
// omitted; details are written in key order; an AdminEvent always has its
// authDetails table. The tables are the same in every numbering, so one
// generated package's builders write them all; only enum values differ.
type flatBufferEncoder struct {
	enums    *enums
	builders sync.Pool // *fbState
}

// fbState is a pooled builder with room for the offsets of a details vector.
type fbState struct {
	b       *flatbuffers.Builder
	offsets []flatbuffers.UOffsetT
}

// maxPooledBuilder is the largest builder kept for reuse after a big event.
const maxPooledBuilder = 64 << 10

func (enc *flatBufferEncoder) Encode(dst []byte, r Record) ([]byte, error) {
	if r.Event == nil && r.Admin == nil {
		return dst, errNoEvent
	}
	kind := r.Kind()
	if n := textBytes(r); n > maxEventBytes {
		return dst, fmt.Errorf("%s %s: %d bytes of text, more than the %d a FlatBuffer may hold", kind, r.ID(), n, maxEventBytes)
	}
	var op int8
	if r.Admin != nil {
		var err error
		if op, err = operationType(r.Admin.OperationType); err != nil {
			return dst, err
		}
	}
	st, _ := enc.builders.Get().(*fbState)
	if st == nil {
		st = &fbState{b: flatbuffers.NewBuilder(1024)}
	}
	st.b.Reset()
	if r.Admin != nil {
		enc.adminEvent(st, r.Admin, op)
	} else {
		enc.event(st, r.Event)
	}
	dst = append(dst, `{"type":"`...)
	dst = append(dst, kind...)
	dst = append(dst, `","obj":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, st.b.FinishedBytes())
	dst = append(dst, `"}`...)
	if cap(st.b.Bytes) <= maxPooledBuilder {
		enc.builders.Put(st)
	}
	return dst, nil
}

// textBytes is the length of every string of r, a bound of its FlatBuffer
// short of the fixed overhead.
func textBytes(r Record) int {
	n := 0
	add := func(ss ...string) {
		for _, s := range ss {
			n += len(s)
		}
	}
	var details map[string]string
	if e := r.Event; e != nil {
		add(e.Type, e.RealmID, e.ClientID, e.UserID, e.SessionID, e.IPAddress, e.Error)
		details = e.Details
	} else {
		a := r.Admin
		add(a.RealmID, a.ResourcePath, a.Representation, a.Error, a.AuthDetails.RealmID, a.AuthDetails.ClientID,
			a.AuthDetails.UserID, a.AuthDetails.Username, a.AuthDetails.IPAddress)
		details = a.Details
	}
	for k, v := range details {
		add(k, v)
	}
	return n
}

// str writes s as valid UTF-8 and returns its offset; 0 (omitted) when empty.
func str(b *flatbuffers.Builder, s string) flatbuffers.UOffsetT {
	if s == "" {
		return 0
	}
	return b.CreateString(validUTF8(s))
}

// details writes m as a vector of Tuple in key order; 0 when m is empty.
// A Tuple always has its key and value, empty ones included (readers
// that verify buffers refuse an absent string where they expect one).
func details(st *fbState, m map[string]string) flatbuffers.UOffsetT {
	if len(m) == 0 {
		return 0
	}
	b := st.b
	var buf [detailsOnStack]detail
	st.offsets = st.offsets[:0]
	for _, d := range sortDetails(buf[:0], m) {
		key := b.CreateString(validUTF8(d.key))
		value := b.CreateString(validUTF8(d.value))
		fb.TupleStart(b)
		fb.TupleAddKey(b, key)
		fb.TupleAddValue(b, value)
		st.offsets = append(st.offsets, fb.TupleEnd(b))
	}
	fb.EventStartDetailsVector(b, len(st.offsets))
	for i := len(st.offsets) - 1; i >= 0; i-- {
		b.PrependUOffsetT(st.offsets[i])
	}
	return b.EndVector(len(st.offsets))
}

func (enc *flatBufferEncoder) event(st *fbState, e *Event) {
	b := st.b
	realm, client, user := str(b, e.RealmID), str(b, e.ClientID), str(b, e.UserID)
	session, ip, errText := str(b, e.SessionID), str(b, e.IPAddress), str(b, e.Error)
	det := details(st, e.Details)
	fb.EventStart(b)
	fb.EventAddUid(b, e.UID)
	fb.EventAddTime(b, e.Time)
	fb.EventAddType(b, fb.EventType(enc.enums.eventType(e.Type)))
	fb.EventAddRealmId(b, realm)
	fb.EventAddClientId(b, client)
	fb.EventAddUserId(b, user)
	fb.EventAddSessionId(b, session)
	fb.EventAddIpAddress(b, ip)
	fb.EventAddError(b, errText)
	fb.EventAddDetails(b, det)
	b.Finish(fb.EventEnd(b))
}

func (enc *flatBufferEncoder) adminEvent(st *fbState, a *AdminEvent, op int8) {
	b := st.b
	d := a.AuthDetails
	authRealm, authClient, authUser := str(b, d.RealmID), str(b, d.ClientID), str(b, d.UserID)
	authName, authIP := str(b, d.Username), str(b, d.IPAddress)
	fb.AuthDetailsStart(b)
	fb.AuthDetailsAddRealmId(b, authRealm)
	fb.AuthDetailsAddClientId(b, authClient)
	fb.AuthDetailsAddUserId(b, authUser)
	fb.AuthDetailsAddUsername(b, authName)
	fb.AuthDetailsAddIpAddress(b, authIP)
	auth := fb.AuthDetailsEnd(b)

	realm, path := str(b, a.RealmID), str(b, a.ResourcePath)
	repr, errText := str(b, a.Representation), str(b, a.Error)
	det := details(st, a.Details)
	fb.AdminEventStart(b)
	fb.AdminEventAddUid(b, a.UID)
	fb.AdminEventAddTime(b, a.Time)
	fb.AdminEventAddRealmId(b, realm)
	fb.AdminEventAddAuthDetails(b, auth)
	fb.AdminEventAddDetails(b, det)
	fb.AdminEventAddResourceType(b, fb.ResourceType(enc.enums.resourceType(a.ResourceType)))
	fb.AdminEventAddOperationType(b, fb.OperationType(op))
	fb.AdminEventAddResourcePath(b, path)
	fb.AdminEventAddRepresentation(b, repr)
	fb.AdminEventAddError(b, errText)
	b.Finish(fb.AdminEventEnd(b))
}

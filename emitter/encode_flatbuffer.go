package emitter

import (
	"encoding/binary"
	"fmt"
	"sync"
	"unicode/utf8"

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
// fbs/. Unset strings are omitted; details are written in key order; an
// AdminEvent always has its authDetails table.
//
// The FlatBuffer is written by fbWriter rather than flatbuffers.Builder:
// three times faster for these fixed tables (see docs/benchmarks.md), and
// tested to read the same through the flatc-generated accessors, flatc
// itself and a Builder-based reference (encode_flatbuffer_ref_test.go).
type flatBufferEncoder struct {
	enums   *enums
	writers sync.Pool // *fbWriter
}

// maxPooledWriter is the largest buffer kept for reuse after a big event.
const maxPooledWriter = 64 << 10

func (enc *flatBufferEncoder) Encode(dst []byte, r Record) ([]byte, error) {
	if r.Event == nil && r.Admin == nil {
		return dst, errNoEvent
	}
	w, _ := enc.writers.Get().(*fbWriter)
	if w == nil {
		w = &fbWriter{buf: make([]byte, 0, 1024)}
	}
	kind := KindEvent
	if r.Admin != nil {
		kind = KindAdminEvent
		op, err := operationType(r.Admin.OperationType)
		if err != nil {
			enc.writers.Put(w)
			return dst, err
		}
		w.adminEvent(r.Admin, enc.enums.resourceType(r.Admin.ResourceType), op)
	} else {
		w.event(r.Event, enc.enums.eventType(r.Event.Type))
	}
	if len(w.buf) > maxEventBytes {
		// Its offsets may have wrapped: never sent.
		return dst, fmt.Errorf("%s %s: %d bytes, more than the %d a FlatBuffer may hold", kind, r.ID(), len(w.buf), maxEventBytes)
	}
	dst = append(dst, `{"type":"`...)
	dst = append(dst, kind...)
	dst = append(dst, `","obj":"`...)
	dst = appendBase64(dst, w.buf)
	dst = append(dst, `"}`...)
	if cap(w.buf) <= maxPooledWriter {
		enc.writers.Put(w)
	}
	return dst, nil
}

// fbWriter writes the FlatBuffer of one event front to back: the root
// offset, the table's vtable and inline fields, then what they refer to.
// Every reference (uoffset) points forward, as the format requires, and
// every value is aligned to its size from the start of the buffer. Offsets
// are 32 bits: Encode refuses a buffer larger than maxEventBytes.
//
// Layout of an Event (an AdminEvent is alike, with its AuthDetails table
// after its own):
//
//	root uoffset | Event vtable | Event table | its strings |
//	Tuple vtable | details vector | per detail: Tuple table, key, value
type fbWriter struct {
	buf []byte
}

// The inline layout of the tables: vtable entries are the byte offset of
// each field in the table, in schema order.
const (
	// Event: soffset, type (int8) + pad, uid, time, 7 uoffsets.
	eventTableSize = 4 + 4 + 8 + 8 + 7*4
	// AdminEvent: soffset, resourceType, operationType + pad, uid, time, 6 uoffsets.
	adminTableSize = 4 + 4 + 8 + 8 + 6*4
	// AuthDetails: soffset, 5 uoffsets.
	authTableSize = 4 + 5*4
	// Tuple: soffset, key, value.
	tupleTableSize = 4 + 2*4
)

var (
	// eventVtable: uid, time, type, realmId, clientId, userId, sessionId,
	// ipAddress, error, details.
	eventVtable = []uint16{8, 16, 4, 24, 28, 32, 36, 40, 44, 48}
	// adminVtable: uid, time, realmId, authDetails, details, resourceType,
	// operationType, resourcePath, representation, error.
	adminVtable = []uint16{8, 16, 24, 28, 32, 4, 5, 36, 40, 44}
	// authVtable: realmId, clientId, userId, username, ipAddress.
	authVtable = []uint16{4, 8, 12, 16, 20}
	// tupleVtable: key, value.
	tupleVtable = []uint16{4, 8}
)

// pad aligns the end of the buffer to align, a power of two.
func (w *fbWriter) pad(align int) {
	if n := -len(w.buf) & (align - 1); n > 0 {
		w.buf = append(w.buf, make([]byte, n)...)
	}
}

func (w *fbWriter) put32(at int, v uint32) { binary.LittleEndian.PutUint32(w.buf[at:], v) }

// vtable writes a vtable for a table of size bytes whose fields are at the
// given offsets, zeroing the entry of every field absent says so. It returns
// where the vtable starts.
func (w *fbWriter) vtable(size int, fields []uint16, absent func(i int) bool) int {
	w.pad(2)
	at := len(w.buf)
	w.buf = binary.LittleEndian.AppendUint16(w.buf, uint16(4+2*len(fields)))
	w.buf = binary.LittleEndian.AppendUint16(w.buf, uint16(size))
	for i, off := range fields {
		if absent != nil && absent(i) {
			off = 0
		}
		w.buf = binary.LittleEndian.AppendUint16(w.buf, off)
	}
	return at
}

// table starts a table of size bytes (zeroed) whose vtable is at vt, aligned
// to align, and returns where it starts.
func (w *fbWriter) table(vt, size, align int) int {
	w.pad(align)
	at := len(w.buf)
	w.buf = append(w.buf, make([]byte, size)...)
	w.put32(at, uint32(at-vt)) // soffset: the vtable is at table - soffset
	return at
}

// str writes s (as valid UTF-8) and points the uoffset at slot to it; an
// empty s stays absent (the vtable must say so).
func (w *fbWriter) str(slot int, s string) {
	if s != "" {
		w.strAlways(slot, s)
	}
}

// strAlways is str that writes an empty string too.
func (w *fbWriter) strAlways(slot int, s string) {
	w.pad(4)
	at := len(w.buf)
	w.put32(slot, uint32(at-slot))
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(s)))
	w.buf = append(w.buf, s...)
	if text := w.buf[at+4:]; !isASCII(text) && !utf8.Valid(text) {
		s = validUTF8(s)
		w.buf = binary.LittleEndian.AppendUint32(w.buf[:at], uint32(len(s)))
		w.buf = append(w.buf, s...)
	}
	w.buf = append(w.buf, 0)
}

// details writes m as a vector of Tuple tables in key order and points the
// uoffset at slot to it; an empty m stays absent.
func (w *fbWriter) details(slot int, m map[string]string) {
	if len(m) == 0 {
		return
	}
	entries := sortedDetails(m)
	vt := w.vtable(tupleTableSize, tupleVtable, nil)
	w.pad(4)
	vec := len(w.buf)
	w.put32(slot, uint32(vec-slot))
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(*entries)))
	w.buf = append(w.buf, make([]byte, 4*len(*entries))...)
	for i, d := range *entries {
		entry := vec + 4 + 4*i
		t := w.table(vt, tupleTableSize, 4)
		w.put32(entry, uint32(t-entry))
		// The vtable shared by every Tuple has both fields: a detail
		// with an empty key or value still gets its (empty) string.
		w.strAlways(t+4, d.key)
		w.strAlways(t+8, d.value)
	}
	releaseDetails(entries)
}

// root starts the buffer with the root uoffset and returns its position.
func (w *fbWriter) root() int {
	w.buf = append(w.buf[:0], 0, 0, 0, 0)
	return 0
}

func (w *fbWriter) event(e *Event, typ int8) {
	root := w.root()
	strs := [...]string{e.RealmID, e.ClientID, e.UserID, e.SessionID, e.IPAddress, e.Error}
	vt := w.vtable(eventTableSize, eventVtable, func(i int) bool {
		switch {
		case i >= 3 && i <= 8:
			return strs[i-3] == ""
		case i == 9:
			return len(e.Details) == 0
		}
		return false
	})
	t := w.table(vt, eventTableSize, 8)
	w.put32(root, uint32(t-root))
	w.buf[t+4] = byte(typ)
	binary.LittleEndian.PutUint64(w.buf[t+8:], uint64(e.UID))
	binary.LittleEndian.PutUint64(w.buf[t+16:], uint64(e.Time))
	for i, s := range strs {
		w.str(t+24+4*i, s)
	}
	w.details(t+48, e.Details)
}

func (w *fbWriter) adminEvent(a *AdminEvent, resource, op int8) {
	root := w.root()
	vt := w.vtable(adminTableSize, adminVtable, func(i int) bool {
		switch i {
		case 2:
			return a.RealmID == ""
		case 4:
			return len(a.Details) == 0
		case 7:
			return a.ResourcePath == ""
		case 8:
			return a.Representation == ""
		case 9:
			return a.Error == ""
		}
		return false
	})
	t := w.table(vt, adminTableSize, 8)
	w.put32(root, uint32(t-root))
	w.buf[t+4], w.buf[t+5] = byte(resource), byte(op)
	binary.LittleEndian.PutUint64(w.buf[t+8:], uint64(a.UID))
	binary.LittleEndian.PutUint64(w.buf[t+16:], uint64(a.Time))
	w.str(t+24, a.RealmID)
	w.str(t+36, a.ResourcePath)
	w.str(t+40, a.Representation)
	w.str(t+44, a.Error)
	// authDetails, always present (keycloak-bridge reads it unchecked).
	d := a.AuthDetails
	auth := [...]string{d.RealmID, d.ClientID, d.UserID, d.Username, d.IPAddress}
	avt := w.vtable(authTableSize, authVtable, func(i int) bool { return auth[i] == "" })
	at := w.table(avt, authTableSize, 4)
	w.put32(t+28, uint32(at-(t+28)))
	for i, s := range auth {
		w.str(at+4+4*i, s)
	}
	w.details(t+32, a.Details)
}

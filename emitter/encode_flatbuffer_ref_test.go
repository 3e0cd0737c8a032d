package emitter

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	fb "github.com/kc-event-emitter/kc-event-emitter/fbs/events201"
)

// This file keeps a FLATBUFFER writer built on the flatc-generated builder
// functions, the obvious way, as the reference that the hand-written writer
// of encode_flatbuffer.go is compared with (same fields through the
// generated accessors).

// fbState is what one reference encoding uses.
type fbState struct {
	b       *flatbuffers.Builder
	offsets []flatbuffers.UOffsetT
}

// refEncode returns the FlatBuffer of r written with the generated builders.
func refEncode(enc *flatBufferEncoder, r Record) ([]byte, error) {
	st := &fbState{b: flatbuffers.NewBuilder(256)}
	if r.Admin != nil {
		if err := refAdminEvent(enc, st, r.Admin); err != nil {
			return nil, err
		}
	} else {
		refEvent(enc, st, r.Event)
	}
	return st.b.FinishedBytes(), nil
}

// str writes s (valid UTF-8) and returns its offset, 0 (omitted) when empty.
func refStr(b *flatbuffers.Builder, s string) flatbuffers.UOffsetT {
	if s == "" {
		return 0
	}
	return b.CreateString(validUTF8(s))
}

// details writes m as a vector of Tuple in key order; 0 when m is empty.
func refDetails(st *fbState, m map[string]string) flatbuffers.UOffsetT {
	if len(m) == 0 {
		return 0
	}
	b := st.b
	entries := sortedDetails(m)
	st.offsets = st.offsets[:0]
	for _, d := range *entries {
		key := b.CreateString(validUTF8(d.key))
		value := b.CreateString(validUTF8(d.value))
		fb.TupleStart(b)
		fb.TupleAddKey(b, key)
		fb.TupleAddValue(b, value)
		st.offsets = append(st.offsets, fb.TupleEnd(b))
	}
	releaseDetails(entries)
	// The tables are the same in every numbering: any generated package's
	// builders write them.
	fb.EventStartDetailsVector(b, len(st.offsets))
	for i := len(st.offsets) - 1; i >= 0; i-- {
		b.PrependUOffsetT(st.offsets[i])
	}
	return b.EndVector(len(st.offsets))
}

func refEvent(enc *flatBufferEncoder, st *fbState, e *Event) {
	b := st.b
	realm, client, user := refStr(b, e.RealmID), refStr(b, e.ClientID), refStr(b, e.UserID)
	session, ip, errText := refStr(b, e.SessionID), refStr(b, e.IPAddress), refStr(b, e.Error)
	det := refDetails(st, e.Details)
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

func refAdminEvent(enc *flatBufferEncoder, st *fbState, a *AdminEvent) error {
	op, err := operationType(a.OperationType)
	if err != nil {
		return err
	}
	b := st.b
	d := a.AuthDetails
	authRealm, authClient, authUser := refStr(b, d.RealmID), refStr(b, d.ClientID), refStr(b, d.UserID)
	authName, authIP := refStr(b, d.Username), refStr(b, d.IPAddress)
	fb.AuthDetailsStart(b)
	fb.AuthDetailsAddRealmId(b, authRealm)
	fb.AuthDetailsAddClientId(b, authClient)
	fb.AuthDetailsAddUserId(b, authUser)
	fb.AuthDetailsAddUsername(b, authName)
	fb.AuthDetailsAddIpAddress(b, authIP)
	auth := fb.AuthDetailsEnd(b)

	realm, path := refStr(b, a.RealmID), refStr(b, a.ResourcePath)
	repr, errText := refStr(b, a.Representation), refStr(b, a.Error)
	det := refDetails(st, a.Details)
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
	return nil
}

// sameAsReference fails t unless the FlatBuffer in payload (a FLATBUFFER
// container) reads, through the generated accessors of n, exactly as the
// reference writer's FlatBuffer of r does.
func sameAsReference(t *testing.T, enc *flatBufferEncoder, n Numbering, r Record, payload []byte) {
	t.Helper()
	var container struct{ Obj []byte }
	if err := json.Unmarshal(payload, &container); err != nil {
		t.Fatal(err)
	}
	if err := checkFlatBuffer(r.Kind(), container.Obj); err != nil {
		t.Fatalf("numbering %s: FlatBuffer fails verification: %v", n, err)
	}
	ref, err := refEncode(enc, r)
	if err != nil {
		t.Fatal(err)
	}
	got, want := readWithGeneratedCode(r.Kind(), n, container.Obj), readWithGeneratedCode(r.Kind(), n, ref)
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Fatalf("numbering %s: the writer's FlatBuffer reads\n %+v\nthe Builder's\n %+v", n, got, want)
	}
}

func TestFlatBufferWriterReadsLikeTheBuilderReference(t *testing.T) {
	for _, c := range wireCases {
		for _, n := range numberings {
			t.Run(c.name+"/"+string(n), func(t *testing.T) {
				enc, _ := NewEncoder(FormatFlatBuffer, n)
				sameAsReference(t, enc.(*flatBufferEncoder), n, c.rec(), encodeCase(t, c, FormatFlatBuffer, n))
			})
		}
	}
}

func TestAppendBase64MatchesTheStandardEncoding(t *testing.T) {
	src := make([]byte, 300)
	for i := range src {
		src[i] = byte(i * 7)
	}
	for n := range len(src) {
		got := appendBase64([]byte("x"), src[:n])
		if want := "x" + base64.StdEncoding.EncodeToString(src[:n]); string(got) != want {
			t.Fatalf("%d bytes: %s, want %s", n, got, want)
		}
	}
}

// fieldKind is what a table field holds, for checkFlatBuffer.
type fieldKind int

const (
	fInt64 fieldKind = iota
	fInt8
	fString
	fAuthDetails
	fTuples
)

var (
	eventFieldKinds = []fieldKind{fInt64, fInt64, fInt8, fString, fString, fString, fString, fString, fString, fTuples}
	adminFieldKinds = []fieldKind{fInt64, fInt64, fString, fAuthDetails, fTuples, fInt8, fInt8, fString, fString, fString}
	authFieldKinds  = []fieldKind{fString, fString, fString, fString, fString}
	tupleFieldKinds = []fieldKind{fString, fString}
)

// checkFlatBuffer applies the rules of FlatBuffers' C++ Verifier to buf, a
// finished Event or AdminEvent: every offset inside the buffer, non-zero and
// forward, scalars and offsets aligned to their size, vtables well formed,
// strings NUL-terminated. The Go accessors read much that it rejects (an
// offset of 0 reads as an empty string), so passing them proves less.
func checkFlatBuffer(kind Kind, buf []byte) error {
	u32 := func(at int) uint32 { return binary.LittleEndian.Uint32(buf[at:]) }
	u16 := func(at int) int { return int(binary.LittleEndian.Uint16(buf[at:])) }
	inside := func(at, n int) bool { return at >= 0 && n >= 0 && at+n <= len(buf) }
	// deref checks the uoffset at `at` and returns its target.
	deref := func(at int) (int, error) {
		if at%4 != 0 || !inside(at, 4) {
			return 0, fmt.Errorf("offset at %d misaligned or outside", at)
		}
		o := u32(at)
		if o == 0 || o >= 1<<31 || !inside(at+int(o), 1) {
			return 0, fmt.Errorf("offset at %d is %d", at, o)
		}
		return at + int(o), nil
	}
	str := func(at int) error {
		s, err := deref(at)
		if err != nil {
			return err
		}
		if s%4 != 0 || !inside(s, 4) || !inside(s+4, int(u32(s))+1) || buf[s+4+int(u32(s))] != 0 {
			return fmt.Errorf("string at %d malformed", s)
		}
		return nil
	}
	var table func(at int, kinds []fieldKind) error
	table = func(t int, kinds []fieldKind) error {
		if t%4 != 0 || !inside(t, 4) {
			return fmt.Errorf("table at %d misaligned or outside", t)
		}
		vt := t - int(int32(u32(t)))
		if vt%2 != 0 || !inside(vt, 4) {
			return fmt.Errorf("vtable of table %d at %d", t, vt)
		}
		vtSize, tSize := u16(vt), u16(vt+2)
		if vtSize < 4 || vtSize%2 != 0 || !inside(vt, vtSize) || !inside(t, tSize) {
			return fmt.Errorf("vtable at %d: size %d, table size %d", vt, vtSize, tSize)
		}
		for i, k := range kinds {
			if 4+2*i >= vtSize {
				break
			}
			off := u16(vt + 4 + 2*i)
			if off == 0 {
				continue
			}
			at := t + off
			size := map[fieldKind]int{fInt64: 8, fInt8: 1}[k]
			if size == 0 {
				size = 4
			}
			if off+size > tSize || at%size != 0 {
				return fmt.Errorf("field %d of table %d at %d: outside or misaligned", i, t, at)
			}
			var err error
			switch k {
			case fString:
				err = str(at)
			case fAuthDetails:
				var sub int
				if sub, err = deref(at); err == nil {
					err = table(sub, authFieldKinds)
				}
			case fTuples:
				var vec int
				if vec, err = deref(at); err == nil {
					if vec%4 != 0 || !inside(vec, 4) || !inside(vec+4, 4*int(u32(vec))) {
						return fmt.Errorf("vector at %d malformed", vec)
					}
					for j := range int(u32(vec)) {
						var tu int
						if tu, err = deref(vec + 4 + 4*j); err != nil {
							return err
						}
						if err = table(tu, tupleFieldKinds); err != nil {
							return err
						}
					}
				}
			}
			if err != nil {
				return fmt.Errorf("field %d of table %d: %w", i, t, err)
			}
		}
		return nil
	}
	root, err := deref(0)
	if err != nil {
		return err
	}
	if kind == KindEvent {
		return table(root, eventFieldKinds)
	}
	return table(root, adminFieldKinds)
}

func TestCheckFlatBufferRejectsWhatTheVerifierRejects(t *testing.T) {
	enc, _ := NewEncoder(FormatFlatBuffer, "")
	out, _ := enc.Encode(nil, wireCases[0].rec())
	var c struct{ Obj []byte }
	json.Unmarshal(out, &c)
	if err := checkFlatBuffer(KindEvent, c.Obj); err != nil {
		t.Fatalf("a good buffer: %v", err)
	}
	for name, corrupt := range map[string]func(b []byte) []byte{
		"truncated":       func(b []byte) []byte { return b[:len(b)-8] },
		"misaligned root": func(b []byte) []byte { b[0] += 2; return b },
		"zero offset": func(b []byte) []byte {
			// realmId (field 3) of the root table, found through its vtable.
			root := int(binary.LittleEndian.Uint32(b))
			vt := root - int(int32(binary.LittleEndian.Uint32(b[root:])))
			binary.LittleEndian.PutUint32(b[root+int(binary.LittleEndian.Uint16(b[vt+4+2*3:])):], 0)
			return b
		},
		"unterminated end": func(b []byte) []byte { b[len(b)-1] = 'x'; return b },
	} {
		b := corrupt(bytes.Clone(c.Obj))
		if err := checkFlatBuffer(KindEvent, b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

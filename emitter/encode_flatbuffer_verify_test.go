package emitter

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"testing"
)

// checkFlatBuffer applies the rules of FlatBuffers' C++ Verifier to what
// the encoder writes.

// checkPayload fails t unless the FlatBuffer in payload (a FLATBUFFER
// container) passes the Verifier's rules and reads, through the generated
// accessors of n, the fields of r.
func checkPayload(t *testing.T, n Numbering, r Record, payload []byte) {
	t.Helper()
	var container struct{ Obj []byte }
	if err := json.Unmarshal(payload, &container); err != nil {
		t.Fatal(err)
	}
	if err := checkFlatBuffer(r.Kind(), container.Obj); err != nil {
		t.Fatalf("numbering %s: FlatBuffer fails verification: %v", n, err)
	}
	readWithGeneratedCode(r.Kind(), n, container.Obj)
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
		"unterminated string": func(b []byte) []byte {
			// The NUL after realmId (field 3) of the root table.
			root := int(binary.LittleEndian.Uint32(b))
			vt := root - int(int32(binary.LittleEndian.Uint32(b[root:])))
			at := root + int(binary.LittleEndian.Uint16(b[vt+4+2*3:]))
			s := at + int(binary.LittleEndian.Uint32(b[at:]))
			b[s+4+int(binary.LittleEndian.Uint32(b[s:]))] = 'x'
			return b
		},
	} {
		b := corrupt(bytes.Clone(c.Obj))
		if err := checkFlatBuffer(KindEvent, b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

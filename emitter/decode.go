package emitter

import (
	"encoding/base64"
	"errors"
	"fmt"

	flatbuffers "github.com/google/flatbuffers/go"

	fb "github.com/kc-event-emitter/kc-event-emitter/fbs/events201"
)

// DecodePayload decodes the body of one delivery, in either wire format,
// back into a Record (uid included) and tells which format it came in. The
// numbering n (empty for the default) gives the names of the enum values
// of a FLATBUFFER body; an enum value the numbering lacks decodes as
// "UNKNOWN". It is meant for receivers: any body, however malformed, is an
// error, never a panic.
func DecodePayload(body []byte, n Numbering) (Record, Format, error) {
	var j struct {
		eventJSON
		Obj *string `json:"obj"`
	}
	if err := unmarshalObject(body, &j); err != nil {
		return Record{}, "", fmt.Errorf("payload: %w", err)
	}
	if j.Obj != nil {
		r, err := decodeContainer(deref(j.Type), *j.Obj, n)
		return r, FormatFlatBuffer, err
	}
	if j.UID == nil {
		return Record{}, FormatJSON, errors.New("JSON payload: no uid")
	}
	r := j.record()
	r.SetUID(*j.UID)
	return r, FormatJSON, nil
}

// decodeContainer decodes the FlatBuffer of a FLATBUFFER container.
func decodeContainer(kind, obj string, n Numbering) (Record, error) {
	enums, err := enumsOf(n)
	if err != nil {
		return Record{}, err
	}
	buf, err := base64.StdEncoding.DecodeString(obj)
	if err != nil {
		return Record{}, fmt.Errorf("FLATBUFFER payload: obj: %w", err)
	}
	switch Kind(kind) {
	case KindEvent, KindAdminEvent:
	default:
		return Record{}, fmt.Errorf("FLATBUFFER payload: type %q, want Event or AdminEvent", kind)
	}
	r, err := readFlatBuffer(Kind(kind), buf, enums)
	if err != nil {
		return Record{}, fmt.Errorf("FLATBUFFER payload: %s: %w", kind, err)
	}
	return r, nil
}

// errMalformed is returned for a FlatBuffer whose offsets lead outside it.
var errMalformed = errors.New("malformed FlatBuffer")

// fbReader copies strings out of a FlatBuffer, refusing to copy more text
// than the buffer holds (a hostile buffer could point many fields at one
// large string).
type fbReader struct{ budget int }

func (rd *fbReader) str(b []byte) string {
	rd.budget -= len(b)
	if rd.budget < 0 {
		panic(errMalformed)
	}
	return string(b)
}

func (rd *fbReader) details(length int, at func(*fb.Tuple, int) bool) map[string]string {
	m := make(map[string]string, min(length, 64))
	var t fb.Tuple
	for i := range length {
		if !at(&t, i) {
			panic(errMalformed)
		}
		m[rd.str(t.Key())] = rd.str(t.Value())
	}
	return m
}

// readFlatBuffer reads a finished FlatBuffer of kind. The generated
// accessors index the buffer without checks; a bad offset panics, which is
// turned into errMalformed.
func readFlatBuffer(kind Kind, buf []byte, enums *enums) (r Record, err error) {
	if len(buf) < 2*flatbuffers.SizeUOffsetT {
		return Record{}, fmt.Errorf("%w: %d bytes", errMalformed, len(buf))
	}
	defer func() {
		if p := recover(); p != nil {
			r, err = Record{}, errMalformed
		}
	}()
	rd := &fbReader{budget: len(buf)}
	if kind == KindEvent {
		e := fb.GetRootAsEvent(buf, 0)
		typ, ok := enums.eventName[int8(e.Type())]
		if !ok {
			typ = "UNKNOWN"
		}
		return Record{Event: &Event{UID: e.Uid(), Time: e.Time(), Type: typ,
			RealmID: rd.str(e.RealmId()), ClientID: rd.str(e.ClientId()), UserID: rd.str(e.UserId()),
			SessionID: rd.str(e.SessionId()), IPAddress: rd.str(e.IpAddress()), Error: rd.str(e.Error()),
			Details: rd.details(e.DetailsLength(), e.Details)}}, nil
	}
	a := fb.GetRootAsAdminEvent(buf, 0)
	res, ok := enums.resourceName[int8(a.ResourceType())]
	if !ok {
		res = "UNKNOWN"
	}
	op, ok := operationName[int8(a.OperationType())]
	if !ok {
		return Record{}, fmt.Errorf("operation type %d, want 0 to 3", a.OperationType())
	}
	out := &AdminEvent{UID: a.Uid(), Time: a.Time(), RealmID: rd.str(a.RealmId()),
		OperationType: op, ResourceType: res, ResourcePath: rd.str(a.ResourcePath()),
		Representation: rd.str(a.Representation()), Error: rd.str(a.Error()),
		Details: rd.details(a.DetailsLength(), a.Details)}
	var d fb.AuthDetails
	if a.AuthDetails(&d) != nil {
		out.AuthDetails = AuthDetails{RealmID: rd.str(d.RealmId()), ClientID: rd.str(d.ClientId()),
			UserID: rd.str(d.UserId()), IPAddress: rd.str(d.IpAddress()), Username: rd.str(d.Username())}
	}
	return Record{Admin: out}, nil
}

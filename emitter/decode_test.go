package emitter

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/kc-event-emitter/kc-event-emitter/fbs/events201"
)

// asReceived returns what a receiver can get back of rec in format f and
// numbering n: FlatBuffers carry no event id, unset enums read as 0, names
// the numbering lacks as UNKNOWN, and details are never nil.
func asReceived(rec Record, f Format, n Numbering) Record {
	enums, _ := enumsOf(n)
	if e := rec.Event; e != nil {
		c := *e
		if c.Details == nil {
			c.Details = map[string]string{}
		}
		if f == FormatFlatBuffer {
			c.ID = ""
			c.Type = enumName(enums.eventValue, c.Type, "UNKNOWN")
		}
		return Record{Event: &c}
	}
	c := *rec.Admin
	if c.Details == nil {
		c.Details = map[string]string{}
	}
	if f == FormatFlatBuffer {
		c.ID = ""
		c.ResourceType = enumName(enums.resourceValue, c.ResourceType, "REALM")
		c.OperationType = enumName(operationValue, c.OperationType, "CREATE")
	}
	return Record{Admin: &c}
}

func recordString(r Record) string {
	if r.Admin != nil {
		return fmt.Sprintf("AdminEvent %+v", *r.Admin)
	}
	if r.Event != nil {
		return fmt.Sprintf("Event %+v", *r.Event)
	}
	return "empty Record"
}

func TestDecodePayloadReturnsEveryGoldenPayloadsRecord(t *testing.T) {
	for _, c := range wireCases {
		for _, tg := range []struct {
			f Format
			n Numbering
		}{{FormatJSON, ""}, {FormatFlatBuffer, Numbering201}, {FormatFlatBuffer, NumberingBridge}, {FormatFlatBuffer, Numbering26}} {
			name := goldenName(c, tg.f, tg.n)
			t.Run(name, func(t *testing.T) {
				body, err := os.ReadFile(filepath.Join(goldenDir, name))
				if err != nil {
					t.Fatal(err)
				}
				got, f, err := DecodePayload(body, tg.n)
				if err != nil {
					t.Fatal(err)
				}
				if f != tg.f {
					t.Fatalf("format %s, want %s", f, tg.f)
				}
				if g, w := recordString(got), recordString(asReceived(c.rec(), tg.f, tg.n)); g != w {
					t.Fatalf("decoded\n %s\nwant\n %s", g, w)
				}
			})
		}
	}
}

func TestDecodePayloadRejectsMalformedBodies(t *testing.T) {
	enc, _ := NewEncoder(FormatFlatBuffer, "")
	good, _ := enc.Encode(nil, wireCases[0].rec())
	obj := good[len(`{"type":"Event","obj":"`) : len(good)-2]
	buf, _ := base64.StdEncoding.DecodeString(string(obj))
	truncated := base64.StdEncoding.EncodeToString(buf[:len(buf)/2])
	for _, tt := range []struct{ name, body, want string }{
		{"empty", ``, "not a JSON object"},
		{"array", `[{"uid":1}]`, "not a JSON object"},
		{"null", `null`, "not a JSON object"},
		{"broken JSON", `{"uid":1`, "payload"},
		{"JSON without uid", `{"time":1,"type":"LOGIN"}`, "no uid"},
		{"container of an unknown type", `{"type":"Other","obj":"AAAA"}`, `"Other"`},
		{"obj not base64", `{"type":"Event","obj":"!!"}`, "obj"},
		{"obj too short", `{"type":"Event","obj":"AAAA"}`, "malformed"},
		{"obj truncated", `{"type":"Event","obj":"` + truncated + `"}`, "malformed"},
		{"details of a number", `{"uid":1,"details":{"a":1}}`, "payload"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, _, err := DecodePayload([]byte(tt.body), "")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("DecodePayload(%q) = %s, %v; want an error with %q", tt.body, recordString(r), err, tt.want)
			}
		})
	}
}

func TestDecodePayloadRefusesAFlatBufferThatRepeatsOneStringBeyondItsSize(t *testing.T) {
	// A hand-made Event whose 300 details all point at one 1 KiB string: a
	// decoder that copied each would turn 3 KiB into 600 KiB.
	enc, _ := NewEncoder(FormatFlatBuffer, "")
	details := map[string]string{}
	for i := range 300 {
		details[fmt.Sprint(i)] = strings.Repeat("x", 1024)
	}
	body, _ := enc.Encode(nil, Record{Event: &Event{Details: details}})
	if _, _, err := DecodePayload(body, ""); err != nil {
		t.Fatalf("an honest large payload: %v", err)
	}
	hostile := sharedStringEvent(t, 300, 1024)
	if _, _, err := DecodePayload(hostile, ""); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("shared strings: err %v, want malformed", err)
	}
}

// sharedStringEvent builds a FLATBUFFER payload of an Event with n details
// whose keys and values are all the same string of size bytes.
func sharedStringEvent(t *testing.T, n, size int) []byte {
	t.Helper()
	b := flatbuffers.NewBuilder(0)
	str := b.CreateString(strings.Repeat("y", size))
	offsets := make([]flatbuffers.UOffsetT, n)
	for i := range offsets {
		events201.TupleStart(b)
		events201.TupleAddKey(b, str)
		events201.TupleAddValue(b, str)
		offsets[i] = events201.TupleEnd(b)
	}
	events201.EventStartDetailsVector(b, n)
	for i := n - 1; i >= 0; i-- {
		b.PrependUOffsetT(offsets[i])
	}
	vec := b.EndVector(n)
	events201.EventStart(b)
	events201.EventAddDetails(b, vec)
	b.Finish(events201.EventEnd(b))
	return append(append([]byte(`{"type":"Event","obj":"`), base64.StdEncoding.EncodeToString(b.FinishedBytes())...), `"}`...)
}

func TestDecodePayloadNamesEnumValuesPerNumbering(t *testing.T) {
	enc, _ := NewEncoder(FormatFlatBuffer, Numbering26)
	body, _ := enc.Encode(nil, Record{Admin: &AdminEvent{OperationType: "UPDATE", ResourceType: "USER"}})
	for _, tt := range []struct {
		n    Numbering
		want string // what a receiver of n reads for USER of numbering 26 (13)
	}{{Numbering26, "USER"}, {Numbering201, "USER_LOGIN_FAILURE"}, {NumberingBridge, "USER_LOGIN_FAILURE"}} {
		r, _, err := DecodePayload(body, tt.n)
		if err != nil {
			t.Fatal(err)
		}
		if r.Admin.ResourceType != tt.want || r.Admin.OperationType != "UPDATE" {
			t.Errorf("numbering %s read %s:%s, want UPDATE:%s", tt.n, r.Admin.OperationType, r.Admin.ResourceType, tt.want)
		}
	}
	if _, _, err := DecodePayload(body, "27"); err == nil {
		t.Error("numbering 27 accepted")
	}
}

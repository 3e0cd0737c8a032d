package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/receiver"
)

// event is a decoded delivery: the row to store and the wire format it came in.
type event struct {
	Row    receiver.Row
	Format string
}

// newDecoder returns the body decoder for numbering.
//
// Interim version until emitter.DecodePayload lands: it decodes the JSON
// format only and keeps the body as the payload.
func newDecoder(numbering string) (func([]byte) (event, error), error) {
	switch numbering {
	case "20.1", "bridge", "26":
	default:
		return nil, fmt.Errorf("--numbering is %q, want 20.1, bridge or 26", numbering)
	}
	return func(body []byte) (event, error) {
		var m struct {
			UID           *int64  `json:"uid"`
			ID            *string `json:"id"`
			Time          int64   `json:"time"`
			Type          string  `json:"type"`
			RealmID       string  `json:"realmId"`
			OperationType string  `json:"operationType"`
			ResourceType  string  `json:"resourceType"`
			Obj           *string `json:"obj"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return event{}, err
		}
		if m.Obj != nil {
			return event{}, errors.New("FLATBUFFER bodies are not decoded yet")
		}
		if m.UID == nil {
			return event{}, errors.New("no uid")
		}
		r := receiver.Row{UID: *m.UID, Kind: "Event", Time: m.Time, Type: m.Type, RealmID: m.RealmID}
		if m.ID != nil {
			r.ID = *m.ID
		}
		if m.OperationType != "" {
			r.Kind, r.Type = "AdminEvent", m.OperationType+":"+m.ResourceType
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, body); err != nil {
			return event{}, err
		}
		r.Payload = buf.Bytes()
		return event{Row: r, Format: "JSON"}, nil
	}, nil
}

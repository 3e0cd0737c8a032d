package main

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/kc-event-emitter/kc-event-emitter/emitter"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/receiver"
)

// event is a decoded delivery: the row to store and the wire format it came in.
type event struct {
	Row    receiver.Row
	Format string
}

// newDecoder returns the body decoder for numbering: it decodes both wire
// formats with emitter.DecodePayload. The stored payload is the event as a
// JSON object: the body itself (compacted) for the JSON format, the JSON
// encoding of the decoded event for the FLATBUFFER format.
func newDecoder(numbering string) (func([]byte) (event, error), error) {
	n, err := emitter.ParseNumbering(numbering)
	if err != nil {
		return nil, fmt.Errorf("--numbering is %q, want 20.1, bridge or 26", numbering)
	}
	asJSON, err := emitter.NewEncoder(emitter.FormatJSON, n)
	if err != nil {
		return nil, err
	}
	return func(body []byte) (event, error) {
		rec, f, err := emitter.DecodePayload(body, n)
		if err != nil {
			return event{}, err
		}
		r := receiver.Row{UID: rec.UID(), Kind: string(rec.Kind()), ID: rec.ID(), Time: rec.Time(),
			Type: rec.TypeName(), RealmID: rec.RealmID()}
		if f == emitter.FormatJSON {
			var buf bytes.Buffer
			if err := json.Compact(&buf, body); err != nil {
				return event{}, err
			}
			r.Payload = buf.Bytes()
		} else if r.Payload, err = asJSON.Encode(nil, rec); err != nil {
			return event{}, err
		}
		return event{Row: r, Format: string(f)}, nil
	}, nil
}

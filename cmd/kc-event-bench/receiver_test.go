package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter"
)

// record turns a generated row into the Record the emitter would read.
func record(r row) emitter.Record {
	if r.admin {
		return emitter.Record{Admin: &emitter.AdminEvent{ID: r.id, UID: 1, Time: r.time, RealmID: r.realmID,
			OperationType: r.op, ResourceType: r.resourceType, ResourcePath: r.resourcePath, Details: map[string]string{}}}
	}
	return emitter.Record{Event: &emitter.Event{ID: r.id, UID: 1, Time: r.time, Type: r.typ, RealmID: r.realmID,
		SessionID: r.session, Details: map[string]string{"username": "alice"}}}
}

func post(t *testing.T, url, password string, body []byte) int {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.SetBasicAuth("kc-event-bench", password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestReceiverRecordsEachSequenceOnceInBothFormats(t *testing.T) {
	recv, err := startReceiver("pw", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer recv.close()
	g := newGenerator(newWorld(2, 3), 1)
	const n = 40
	a := recv.expect(n)
	for seq := range n {
		f := emitter.FormatJSON
		if seq%2 == 1 {
			f = emitter.FormatFlatBuffer
		}
		enc, err := emitter.NewEncoder(f, emitter.Numbering201)
		if err != nil {
			t.Fatal(err)
		}
		body, err := enc.Encode(nil, record(g.next(seq, time.Now().UnixMilli())))
		if err != nil {
			t.Fatal(err)
		}
		if code := post(t, recv.url(), "pw", body); code != http.StatusOK {
			t.Fatalf("event %d (%s): HTTP %d", seq, f, code)
		}
		if seq == 0 {
			if code := post(t, recv.url(), "pw", body); code != http.StatusOK { // delivered again
				t.Fatalf("event 0 again: HTTP %d", code)
			}
			if code := post(t, recv.url(), "wrong", body); code != http.StatusUnauthorized {
				t.Fatalf("wrong password: HTTP %d, want 401", code)
			}
		}
	}
	select {
	case <-a.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("not done: %d of %d arrived", a.delivered.Load(), n)
	}
	if a.delivered.Load() != n || a.duplicates.Load() != 1 || a.unknown.Load() != 0 {
		t.Errorf("delivered %d, duplicates %d, unknown %d; want %d, 1, 0", a.delivered.Load(), a.duplicates.Load(), a.unknown.Load(), n)
	}
	for seq := range n {
		if a.at[seq].Load() == 0 {
			t.Errorf("event %d has no arrival time", seq)
		}
	}
	body, err := recv.sampleBody()
	if err != nil {
		t.Fatal(err)
	}
	rec, _, err := emitter.DecodePayload(body, emitter.Numbering201)
	if err != nil || rec.Event == nil || rec.Event.Type != "LOGIN" {
		t.Errorf("sample body is not a LOGIN: %v %+v", err, rec)
	}
}

func TestReceiverWithoutARunAcceptsAndForgets(t *testing.T) {
	recv, err := startReceiver("pw", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer recv.close()
	enc, _ := emitter.NewEncoder(emitter.FormatJSON, emitter.Numbering201)
	body, _ := enc.Encode(nil, record(newGenerator(newWorld(1, 1), 1).next(0, 1)))
	r, err := goLoad(context.Background(), recv.url(), "pw", body, 2, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// A request in flight when the generator stops is answered but not counted.
	if answered := recv.requests.Load(); r.requests == 0 || r.errors != 0 || answered < r.requests || answered > r.requests+2 {
		t.Errorf("load generator: %+v; receiver answered %d", r, answered)
	}
}
